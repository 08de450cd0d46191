"""Running analyses: the runner (the one place a job runs) and the executors that call it."""
