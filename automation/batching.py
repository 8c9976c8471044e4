"""How automation's stream consumers take their batches."""

#: seconds an automation consumer waits for more records while it has less than a full batch.
#: Under light load each commit's few events were a batch, and a statement, per group (seven
#: groups); waiting 100 ms cut PostgreSQL's transactions per message by a quarter to almost half
#: at 300 msgs/s (BENCHMARKS.md, issue 19) and delays an automated action by at most that.
LINGER = 0.1
