"""Learned and true dynamics models; the batched ensemble layer shared with critics."""
