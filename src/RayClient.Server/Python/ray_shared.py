# RayClient embedded server: what the worker (ray_worker.py) and the job drivers' `ray` module
# (ray_driver.py) must agree on, in one file (standard library only). The server writes it next
# to both: the worker imports it as `ray_shared`, the driver package as `ray.ray_shared`.
#
# Pickles refer to these names by their Ray module paths (ray.ObjectRef, ray.exceptions.*,
# ray.util.client.client_pickler.PickleStub, ray._byvalue.*), never by this file's name, so a
# pickle made in a driver loads in a worker and vice versa.
import builtins
import collections
import marshal
import sys
import types

PickleStub = collections.namedtuple("PickleStub", ["type", "client_id", "ref_id", "name", "baseline_options"])
PickleStub.__module__ = "ray.util.client.client_pickler"


# --- ray.exceptions -----------------------------------------------------------------------------
class RayError(Exception):
    pass


class RayTaskError(RayError):
    """A task raised: the same constructor arguments as Ray's plain RayTaskError
    (function_name, traceback_str, cause, proctitle, pid, ip)."""

    def __init__(self, function_name, traceback_str, cause, proctitle, pid, ip):
        super().__init__(function_name, traceback_str, cause, proctitle, pid, ip)
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.proctitle = proctitle
        self.pid = pid
        self.ip = ip

    def __str__(self):
        return self.traceback_str


class GetTimeoutError(RayError, TimeoutError):
    pass


class RaySystemError(RayError):
    pass


class TaskCancelledError(RayError):
    pass


class RayActorError(RayError):
    pass


class ActorDiedError(RayActorError):
    pass


class WorkerCrashedError(RayError):
    pass


class RuntimeEnvSetupError(RayError):
    pass


class ObjectStoreFullError(RayError):
    pass


EXCEPTIONS = (RayError, RayTaskError, GetTimeoutError, RaySystemError, TaskCancelledError,
              RayActorError, ActorDiedError, WorkerCrashedError, RuntimeEnvSetupError,
              ObjectStoreFullError)
for _cls in EXCEPTIONS:
    _cls.__module__ = "ray.exceptions"
    _cls.__qualname__ = _cls.__name__  # picklable by reference, as Ray's own classes


# --- ray.ObjectRef ------------------------------------------------------------------------------
class ObjectRef:
    __slots__ = ("_id", "__weakref__")

    def __init__(self, id_bytes):
        self._id = bytes(id_bytes)

    def binary(self):
        return self._id

    def hex(self):
        return self._id.hex()

    def __eq__(self, other):
        return isinstance(other, ObjectRef) and other._id == self._id

    def __hash__(self):
        return hash(self._id)

    def __repr__(self):
        return "ObjectRef(%s)" % self._id.hex()


ObjectRef.__module__ = "ray"
ObjectRef.__qualname__ = "ObjectRef"


# --- ray._byvalue: functions and classes a job driver's script defines -------------------------
# They travel by value, as Ray ships them with cloudpickle: code objects marshalled by the same
# interpreter, globals, defaults and closures pickled along, filled in after creation so that
# recursive references resolve. The driver pickles with function_by_value/class_by_value; the
# worker (or the driver) loads with the four helpers, registered as ray._byvalue.
EMPTY_CELL = "__rayclient_empty_cell__"


def _fn_skeleton(code, name, qualname, module, ncells, version):
    if tuple(version) != tuple(sys.version_info[:2]):
        raise RuntimeError("A function pickled by value on Python %d.%d cannot run on Python %d.%d."
                           % (version[0], version[1], sys.version_info[0], sys.version_info[1]))
    closure = tuple(types.CellType() for _ in range(ncells)) if ncells else None
    fn = types.FunctionType(marshal.loads(code), {"__builtins__": builtins, "__name__": module}, name, None, closure)
    fn.__qualname__ = qualname
    fn.__module__ = module
    return fn


def _fn_fill(fn, state):
    names, defaults, kwdefaults, cells, attributes = state
    fn.__globals__.update(names)
    fn.__defaults__ = defaults
    fn.__kwdefaults__ = kwdefaults
    for cell, value in zip(fn.__closure__ or (), cells):
        if value != EMPTY_CELL:
            cell.cell_contents = value
    fn.__dict__.update(attributes)
    return fn


def _cls_skeleton(name, bases, qualname, module):
    return type(name, tuple(bases), {"__module__": module, "__qualname__": qualname})


def _cls_fill(cls, attributes):
    for key, value in attributes.items():
        setattr(cls, key, value)
    return cls


def _global_names(code):
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def function_by_value(fn):
    """The reduce tuple (for Pickler.reducer_override) of a function pickled by value."""
    code = fn.__code__
    names = {name: fn.__globals__[name] for name in _global_names(code) if name in fn.__globals__}
    cells = []
    for cell in fn.__closure__ or ():
        try:
            cells.append(cell.cell_contents)
        except ValueError:
            cells.append(EMPTY_CELL)
    state = (names, fn.__defaults__, fn.__kwdefaults__, cells, dict(fn.__dict__))
    args = (marshal.dumps(code), fn.__name__, fn.__qualname__, fn.__module__,
            len(fn.__closure__ or ()), tuple(sys.version_info[:2]))
    return _fn_skeleton, args, state, None, None, _fn_fill


def class_by_value(cls):
    """The reduce tuple (for Pickler.reducer_override) of a class pickled by value."""
    attributes = {k: v for k, v in cls.__dict__.items()
                  if k not in ("__dict__", "__weakref__", "__module__", "__qualname__")}
    return _cls_skeleton, (cls.__name__, cls.__bases__, cls.__qualname__, cls.__module__), attributes, None, None, _cls_fill


def install_byvalue(module):
    """Puts the load-side helpers on `module` (ray._byvalue) under the names pickles use."""
    for helper in (_fn_skeleton, _fn_fill, _cls_skeleton, _cls_fill):
        helper.__module__ = "ray._byvalue"
        helper.__qualname__ = helper.__name__
        setattr(module, helper.__name__, helper)
    module._EMPTY_CELL = EMPTY_CELL
    return module
