"""Analysis passes over a saved results stream (they never touch the network)."""

from loadtests.analysis.summary import SUMMARY_FILE, summarize, summarize_records, write_summary

__all__ = ["SUMMARY_FILE", "summarize", "summarize_records", "write_summary"]
