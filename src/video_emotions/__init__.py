"""Video emotions analysis service: facial expression estimates for interview videos."""

__version__ = "0.1.0"
