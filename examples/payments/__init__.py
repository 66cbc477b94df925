"""payments: the example payment service (Flask) that shop calls over HTTP."""
