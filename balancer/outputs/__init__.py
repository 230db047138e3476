"""Outputs to object storage: finished jobs' files copied to an S3-compatible
bucket under job-scoped keys, served back by signed URL or through /view."""
