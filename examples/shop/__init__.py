"""shop: the example storefront (FastAPI) that calls payments over HTTP."""
