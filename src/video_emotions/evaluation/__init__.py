"""Measuring the expression classifiers: labelled face sets, classification figures, the eval command."""
