"""What operators need to run the service: health, metrics, correlated logs, the audit trail and
the admin dashboard's figures."""
