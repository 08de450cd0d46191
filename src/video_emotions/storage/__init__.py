"""Where data lives: the Interviewz tables and our own (db), videos and run logs (blobs)."""
