"""The seeds' job in Flink SQL (PyFlink: all the work in Flink's JVM) on the
benchmark's users file, for scripts/bench.sh: the filesystem source with the json
format, each user formatted to the 12-field row (as format_user makes it) into a
blackhole sink, and 1-minute TUMBLE gender counts by the `ts_ms` event time into JSON
files; batch mode (a bounded file: Flink's best case), parallelism PARALLELISM
(default 2). Prints the wall time (start-up included), the job's own time (from
submitting the statements to their end) and the windows' count.

    python bench_flink.py USERS.jsonl OUT_DIR [PARALLELISM]
"""
import glob
import os
import shutil
import sys
import time

started = time.time()
from pyflink.table import EnvironmentSettings, TableEnvironment  # noqa: E402

users, out = sys.argv[1], sys.argv[2]
parallelism = sys.argv[3] if len(sys.argv) > 3 else "2"
shutil.rmtree(out, ignore_errors=True)

env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
env.get_config().set("parallelism.default", parallelism)
env.execute_sql(f"""
CREATE TABLE users (
  ts_ms BIGINT,
  gender STRING,
  name ROW<title STRING, `first` STRING, `last` STRING>,
  location ROW<street ROW<`number` INT, name STRING>, city STRING, state STRING,
               country STRING, postcode STRING>,
  email STRING,
  login ROW<uuid STRING, username STRING>,
  dob ROW<`date` STRING>,
  registered ROW<`date` STRING>,
  phone STRING,
  picture ROW<medium STRING>,
  event_time AS TO_TIMESTAMP_LTZ(ts_ms, 3)
) WITH ('connector' = 'filesystem', 'path' = 'file://{os.path.abspath(users)}',
        'format' = 'json')
""")
env.execute_sql("""
CREATE TABLE user_rows (
  id STRING, first_name STRING, last_name STRING, gender STRING, address STRING,
  post_code STRING, email STRING, username STRING, dob STRING,
  registered_date STRING, phone STRING, picture STRING
) WITH ('connector' = 'blackhole')
""")
env.execute_sql(f"""
CREATE TABLE gender_counts (
  window_start TIMESTAMP(3), male_count BIGINT, female_count BIGINT, total_count BIGINT
) WITH ('connector' = 'filesystem', 'path' = 'file://{os.path.abspath(out)}',
        'format' = 'json')
""")
statements = env.create_statement_set()
statements.add_insert_sql("""
INSERT INTO user_rows
SELECT login.uuid, name.`first`, name.`last`, gender,
       CONCAT_WS(', ', CONCAT_WS(' ', CAST(location.street.`number` AS STRING),
                 location.street.name), location.city, location.state, location.country),
       location.postcode, email, login.username, dob.`date`, registered.`date`, phone,
       picture.medium
FROM users
""")
statements.add_insert_sql("""
INSERT INTO gender_counts
SELECT window_start,
       SUM(CASE WHEN LOWER(gender) = 'male' THEN 1 ELSE 0 END),
       SUM(CASE WHEN LOWER(gender) = 'female' THEN 1 ELSE 0 END),
       COUNT(*)
FROM TABLE(TUMBLE(TABLE users, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end
""")
submitted = time.time()
statements.execute().wait()
job = time.time() - submitted
n = sum(1 for f in glob.glob(os.path.join(out, "**", "*"), recursive=True)
        if os.path.isfile(f) and not os.path.basename(f).startswith(".")
        for _ in open(f))
print(f"flink: {time.time() - started:.1f} s wall, {job:.1f} s job, {n} windows")
