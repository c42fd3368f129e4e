"""HTTP resources, one blueprint per module. No MXNet here: compute/ does the math."""
