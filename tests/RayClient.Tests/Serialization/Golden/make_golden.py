"""Regenerates the golden error pickles of PythonErrorDecoderTests.cs.

Not run by the tests (it needs cloudpickle, which the test machines may lack). It imitates
what a Ray server sends: a stand-in ``ray.exceptions`` module (written for this test, shaped
like Ray's: RayTaskError with six args, the dual ``RayTaskError(Cause)`` class made at run
time, ActorDiedError with an ``error_msg`` state) pickled with cloudpickle, whose helper
functions are re-homed under ``ray.cloudpickle.*`` as Ray vendors them.

    python3 make_golden.py   # prints C# constants
"""
import sys
import types

import cloudpickle
import cloudpickle.cloudpickle as cp_main
import cloudpickle.cloudpickle_fast as cp_fast

# Ray vendors cloudpickle as ray.cloudpickle: make the helper globals carry those names.
ray = types.ModuleType("ray")
ray.__path__ = []
sys.modules["ray"] = ray
sys.modules["ray.cloudpickle"] = cloudpickle
sys.modules["ray.cloudpickle.cloudpickle"] = cp_main
sys.modules["ray.cloudpickle.cloudpickle_fast"] = cp_fast
for mod, name in [(cp_main, n) for n in dir(cp_main) if n.startswith("_make") or n.startswith("_builtin") or n.startswith("_class") or n.startswith("_function")] + \
                 [(cp_fast, n) for n in dir(cp_fast) if n.startswith("_class") or n.startswith("_function")]:
    f = getattr(mod, name)
    if callable(f) and getattr(f, "__module__", None) == mod.__name__:
        f.__module__ = "ray." + mod.__name__

SOURCE = '''
class RayError(Exception):
    pass

class GetTimeoutError(RayError, TimeoutError):
    pass

class RayActorError(RayError):
    def __init__(self, cause=None):
        self.base_error_msg = "The actor died unexpectedly before finishing this task."
        self.error_msg = self.base_error_msg if cause is None else self.base_error_msg + "\\n\\t" + str(cause)

class ActorDiedError(RayActorError):
    pass

class RayTaskError(RayError):
    def __init__(self, function_name, traceback_str, cause, proctitle=None, pid=None, ip=None, actor_repr=None):
        self.args = (function_name, traceback_str, cause, proctitle, pid, ip)
        self.proctitle = proctitle
        self.pid = pid
        self.ip = ip
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.actor_repr = actor_repr
        self.cause = cause

    def __str__(self):
        return "%s (pid=%s, ip=%s)\\n%s" % (self.proctitle, self.pid, self.ip, self.traceback_str)

    def as_instanceof_cause(self, explicit_reduce=False):
        cause_cls = self.cause.__class__
        text = str(self)

        class cls(RayTaskError, cause_cls):
            def __init__(self, cause):
                self.cause = cause
                self.args = (cause,)

            def __getattr__(self, name):
                return getattr(self.cause, name)

            def __str__(self):
                return text

        if explicit_reduce:
            cls.__reduce__ = lambda self: (type(self), (self.cause,))
        cls.__name__ = cls.__qualname__ = "RayTaskError(%s)" % cause_cls.__name__
        return cls(self.cause)
'''
exc = types.ModuleType("ray.exceptions")
exec(SOURCE, exc.__dict__)
sys.modules["ray.exceptions"] = exc
ray.exceptions = exc

raylet = types.ModuleType("ray._raylet")
exec("class ActorID:\n    def __init__(self, b): self.b = b\n    def __reduce__(self): return (type(self), (self.b,))\n", raylet.__dict__)
sys.modules["ray._raylet"] = raylet

TB = ('Traceback (most recent call last):\n'
      '  File "/tmp/job/tasks.py", line 7, in divide\n'
      '    return a / b\n'
      'ZeroDivisionError: division by zero\n')


def task_error(cause, tb=TB):
    return exc.RayTaskError("tasks.divide", tb, cause, "ray::divide()", 4242, "10.0.0.7")


def dual(explicit_reduce):
    d = task_error(ZeroDivisionError("division by zero")).as_instanceof_cause(explicit_reduce)
    if not explicit_reduce:
        # What Ray <= 2.47 pickles: the instance dict copied from the RayTaskError.
        d.__dict__.update(traceback_str=TB, proctitle="ray::divide()", pid=4242, ip="10.0.0.7",
                          function_name="tasks.divide", actor_repr=None)
    return d


class MyError(Exception):  # defined in __main__: cloudpickle pickles it by value
    pass


cases = {
    "DualOld": dual(False),
    "DualNew": dual(True),
    "DualUserClassByValue": task_error(MyError("bad input", 3)).as_instanceof_cause(),
    "PlainTaskError": task_error(ValueError("boom")),
    "GetTimeout": exc.GetTimeoutError("Get timed out: some object(s) not ready."),
    "ActorDied": exc.ActorDiedError(raylet.ActorID(bytes(range(16)))),
    "FileNotFound": FileNotFoundError(2, "No such file or directory", "data.csv"),
}
cases["ActorDied"].actor_id = raylet.ActorID(bytes(range(16)))

for name, value in cases.items():
    data = cloudpickle.dumps(value, protocol=5)
    print(f'    internal const string {name} =')
    hexed = data.hex()
    for i in range(0, len(hexed), 120):
        end = ";" if i + 120 >= len(hexed) else " +"
        print(f'        "{hexed[i:i+120]}"{end}')
    print()
