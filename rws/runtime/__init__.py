"""Load -> provision -> start -> swap -> drain: the running server and its config generations."""
