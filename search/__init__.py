"""How architectures are trained, searched and reported."""
