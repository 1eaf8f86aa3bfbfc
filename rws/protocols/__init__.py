"""HTTP protocols: sans-IO cores (no sockets, no clocks) and the asyncio shell that drives them."""
