"""Provider status callbacks: each provider's view validates the request's signature and parses
its body into normalized events; record() keeps the raw payload and moves the delivery."""
