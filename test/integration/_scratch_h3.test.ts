import { it } from 'vitest';
import { startInfluxd, influxQuery } from '../support/influxd.js';
it('scratch', async () => {
const h = await startInfluxd();
console.log(h.url);
const r = await fetch(h.url + '/ping'); console.log(r.status, r.headers.get('x-influxdb-version'));
console.log(JSON.stringify(await influxQuery(h.url, h.database, 'SHOW DATABASES')));
await fetch(h.url + '/write?db=odopulse_test&precision=ms', {method:'POST', body: 'telemetry,vin=A b=true,f=1,s="x" 1700000000000\ntelemetry,vin=A f=2 1700000001000\ntelemetry,vin=A b=false 1700000002000'});
console.log(JSON.stringify(await influxQuery(h.url, h.database, 'SELECT LAST(*) FROM telemetry WHERE vin=\'A\'; SELECT * FROM telemetry ORDER BY time DESC LIMIT 1; SELECT count(f) FROM telemetry; SELECT mean(f) FROM telemetry WHERE time >= 1700000000000ms AND time < 1700000004000ms GROUP BY time(1500ms); SELECT last(b) FROM telemetry WHERE time >= 1700000000000ms AND time < 1700000004000ms GROUP BY time(1500ms)')));
console.log(JSON.stringify(await influxQuery(h.url, h.database, `SELECT "f" FROM "odopulse_test"."autogen"."telemetry" WHERE "vin" = 'a\\'b\\\\c\\n'`)));
await h.stop();
});
