"""What a person sees: the colours, the timeline plot (PNG) and the standalone HTML report."""
