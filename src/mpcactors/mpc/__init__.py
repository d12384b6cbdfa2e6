"""Three-party Shamir MPC: the sans-I/O engine, step 7's conversion and step 8's lasso."""
