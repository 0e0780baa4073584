// The shape of a family's text table (one module per prompt family, picked by index.ts).
import type { PromptDraft, PromptKind } from '../types.js';

export type PromptParams = PromptDraft['params'];

export interface RenderedText {
  title: string;
  body: string;
  actions?: { id: string; label: string }[];
}

/** One family's texts: for each of its kinds, a renderer per locale. */
export type TextTable<K extends PromptKind = PromptKind> = Partial<
  Record<K, { en: (p: PromptParams) => RenderedText; 'zh-CN': (p: PromptParams) => RenderedText }>
>;
