"""A lean HTTP/1.1 client for the small POSTs the balancer sends its backends."""
