"""Small helpers the README's C# samples call as tasks."""
import os


def length(data):
    # An ObjectRef passed directly as an argument arrives here as its value (bytes).
    return len(data)


def mode():
    # The job's runtime env sets MODE (RuntimeEnv.EnvVars in the sample).
    return os.environ.get("MODE")
