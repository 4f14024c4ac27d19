"""Reading the log: the report, what-if replay, quality estimates and their renderings."""
