"""What authsvc reads or keeps outside its own process: the verification keys (files, a JWKS
URL refreshed in the background) and the replay store of single-use message signatures
shared across replicas. The I/O the pure check (authsvc.check) never does."""
