"""The seeds' Spark job on the benchmark's users file, for scripts/bench.sh: the same
format (12 columns, as format_user makes them) and 1-minute gender counts by the
`ts_ms` event time. Prints the wall time (start-up included) and the windows' count.

    python bench_spark.py USERS.jsonl OUT_DIR
"""
import sys
import time

started = time.time()
from pyspark.sql import SparkSession, functions as F  # noqa: E402

users, out = sys.argv[1], sys.argv[2]
spark = (
    SparkSession.builder.master("local[*]")
    .appName("sluice-bench")
    .config("spark.ui.showConsoleProgress", "false")
    .getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")
df = spark.read.json(users)
rows = df.select(
    F.col("login.uuid").alias("id"),
    F.col("name.first").alias("first_name"),
    F.col("name.last").alias("last_name"),
    F.col("gender"),
    F.concat_ws(
        ", ",
        F.concat_ws(" ", F.col("location.street.number").cast("string"), F.col("location.street.name")),
        F.col("location.city"),
        F.col("location.state"),
        F.col("location.country"),
    ).alias("address"),
    F.col("location.postcode").cast("string").alias("post_code"),
    F.col("email"),
    F.col("login.username").alias("username"),
    F.col("dob.date").alias("dob"),
    F.col("registered.date").alias("registered_date"),
    F.col("phone"),
    F.col("picture.medium").alias("picture"),
    (F.col("ts_ms") / 1000).cast("timestamp").alias("event_time"),
)
rows.cache()
rows.write.format("noop").mode("overwrite").save()
windows = (
    rows.groupBy(F.window("event_time", "1 minute"))
    .agg(
        F.sum(F.when(F.lower("gender") == "male", 1).otherwise(0)).alias("male_count"),
        F.sum(F.when(F.lower("gender") == "female", 1).otherwise(0)).alias("female_count"),
        F.count("*").alias("total_count"),
    )
)
windows.write.mode("overwrite").json(out)
n = spark.read.json(out).count()
spark.stop()
print(f"pyspark: {time.time() - started:.1f} s wall, {n} windows")
