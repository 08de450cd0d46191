"""Video input: probe a file and decode the frames the sampling rule picks inside each segment."""
