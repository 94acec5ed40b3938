"""Tasks that use Ray themselves: an actor handle passed from C# arrives as a handle."""
import ray


def use_counter(counter, times):
    refs = [counter.incr.remote() for _ in range(times)]
    return ray.get(refs)[-1]
