"""What each backend offers (node classes, combo values, model files), read
from its own catalogue routes, and what a prompt needs of a backend."""
