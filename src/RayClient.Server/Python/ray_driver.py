# RayClient embedded server: the `ray` module of job drivers (standard library only).
#
# A job submitted to the embedded server runs with this package first on PYTHONPATH, so the
# entrypoint's `import ray` finds it. It is backed by the embedded server over a loopback socket
# (RAYCLIENT_DRIVER_ADDRESS, proved with the job's RAYCLIENT_DRIVER_TOKEN) that speaks the framed
# protocol the workers use for their callbacks (see ray_worker.py):
#   u32 little-endian length of the rest | u8 kind | u64 seq | u32-length-prefixed blobs
# Answers carry a one-byte status blob first; the server may also send log frames (what the
# job's tasks print), which are written to this process's stdout, as Ray's log_to_driver does.
#
# Values cross as pickles with Ray's PickleStub persistent ids for object refs and actor handles,
# the convention of the workers. Functions and classes the script defines (module __main__, or
# anything that cannot be imported by name) are pickled by value, as Ray ships them with
# cloudpickle: code objects are marshalled (driver and workers run the same interpreter), their
# globals, defaults and closures pickled along. What this module does not support raises an error
# that names the call.
import collections
import importlib
import io
import itertools
import json
import os
import pickle
import socket
import struct
import sys
import threading
import types

from . import ray_shared  # written next to this file by the server

__version__ = "2.51.0"

_KIND_HELLO = 40
_KIND_PUT = 41
_KIND_GET = 42
_KIND_WAIT = 43
_KIND_SUBMIT_TASK = 44
_KIND_CREATE_ACTOR = 45
_KIND_SUBMIT_METHOD = 46
_KIND_RELEASE = 47
_KIND_CLUSTER = 48
_KIND_KILL_ACTOR = 49
_KIND_GET_ACTOR = 50
_KIND_CANCEL = 51
_KIND_RESULT = 60
_KIND_LOG = 61

_RELEASE_FLUSH_SECONDS = 0.5  # dropped refs wait at most this long for the next request to carry them

_HEADER = struct.Struct("<IBQ")
_U32 = struct.Struct("<I")
_ID_LENGTH = 28


def _unsupported(call):
    return NotImplementedError(
        "%s is not supported by the ray module of the RayClient embedded server (a job driver on "
        "one machine); run the job on a Ray cluster for it." % call)


# --- the names pickles refer to ----------------------------------------------------------------
def _module(name):
    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name)
        sys.modules[name] = module
    return module


_util = _module("ray.util")
_client = _module("ray.util.client")
_client_pickler = _module("ray.util.client.client_pickler")
exceptions = _module("ray.exceptions")
remote_function = _module("ray.remote_function")
actor = _module("ray.actor")
_byvalue = _module("ray._byvalue")
util = _util
_util.client = _client
_client.client_pickler = _client_pickler

PickleStub = ray_shared.PickleStub
_client_pickler.PickleStub = PickleStub

# Also names of this module, as before they moved to ray_shared.py.
from .ray_shared import (ActorDiedError, GetTimeoutError, ObjectStoreFullError,  # noqa: E402
                         RayActorError, RayError, RaySystemError, RayTaskError,
                         RuntimeEnvSetupError, TaskCancelledError, WorkerCrashedError)

for _cls in ray_shared.EXCEPTIONS:
    setattr(exceptions, _cls.__name__, _cls)

ObjectRef = ray_shared.ObjectRef


def _object_ref_reduce(self):
    raise TypeError("An ObjectRef is passed to tasks as an argument, not pickled by itself.")


ObjectRef.__reduce__ = _object_ref_reduce  # this process's copy only: a driver sends refs as PickleStubs


# --- reference counting: the driver's last ObjectRef to an object going away releases it --------
# Ray frees an object when no process refers to it any more; here the server holds a job's objects
# for its driver session (and for the tasks that use them), so the driver tells the server when
# its last ObjectRef to an object is gone. __init__ and __del__ only append to deques (atomic,
# lock-free: __del__ runs wherever the garbage collector does); _Releases counts them and sends
# the ids whose count fell to zero, batched, in front of the driver's next request or from a
# background flush.
class _Releases:
    def __init__(self):
        self.created = collections.deque()
        self.dropped = collections.deque()
        self.counts = {}
        self.lock = threading.Lock()

    def take(self):
        """The ids whose last ObjectRef in this process is gone since the last call."""
        with self.lock:
            n = len(self.dropped)  # each of these was created before it was dropped: counted below
            created, dropped, counts = self.created, self.dropped, self.counts
            while created:
                key = created.popleft()
                counts[key] = counts.get(key, 0) + 1
            gone = []
            for _ in range(n):
                key = dropped.popleft()
                left = counts.get(key, 0) - 1
                if left > 0:
                    counts[key] = left
                else:
                    counts.pop(key, None)
                    gone.append(key)
            return gone

    def pending(self):
        return len(self.dropped) > 0


_releases = _Releases()


def _object_ref_init(self, id_bytes):
    self._id = bytes(id_bytes)
    _releases.created.append(self._id)


def _object_ref_del(self):
    try:
        _releases.dropped.append(self._id)
    except Exception:  # interpreter shutdown
        pass


ObjectRef.__init__ = _object_ref_init
ObjectRef.__del__ = _object_ref_del

# By-value pickling of what the script defines (ray_shared.py; the workers load with the same helpers).
ray_shared.install_byvalue(_byvalue)


def _importable(obj):
    module = getattr(obj, "__module__", None)
    if module is None or module == "__main__":
        return False
    try:
        target = sys.modules.get(module) or importlib.import_module(module)
        for part in obj.__qualname__.split("."):
            target = getattr(target, part)
        return target is obj
    except Exception:
        return False


class _Pickler(pickle.Pickler):
    """Pickles task arguments and functions: refs and handles as PickleStubs, the script's own
    functions and classes by value, modules by name, remote functions as the workers' stubs."""

    def __init__(self, file, client_id):
        super().__init__(file, protocol=5)
        self._client_id = client_id

    def persistent_id(self, obj):
        if type(obj) is ObjectRef:
            return PickleStub("Object", self._client_id, obj.binary(), None, None)
        if type(obj) is ActorHandle:
            return PickleStub("Actor", self._client_id, obj._actor_id, None, None)
        return None

    def reducer_override(self, obj):
        if isinstance(obj, types.ModuleType):
            return importlib.import_module, (obj.__name__,)
        if isinstance(obj, RemoteFunction):
            return _worker_global("ray.remote_function", "RemoteFunction"), (obj._function, obj._options)
        if isinstance(obj, ActorClass):
            return _worker_global("ray.remote_function", "ActorClassStub"), (obj._cls,)
        if isinstance(obj, types.FunctionType) and not _importable(obj):
            return ray_shared.function_by_value(obj)
        if isinstance(obj, type) and obj.__module__ == "__main__":
            return ray_shared.class_by_value(obj)
        return NotImplemented


def _worker_global(module, name):
    """A name that exists in the workers' `ray` stubs (ray_worker.py), pickled by reference."""
    stub = _WORKER_GLOBALS.get((module, name))
    if stub is None:
        stub = type(name, (), {})
        stub.__module__ = module
        stub.__qualname__ = name
        setattr(sys.modules[module], name, stub)
        _WORKER_GLOBALS[(module, name)] = stub
    return stub


_WORKER_GLOBALS = {}


def _dumps(value, client_id):
    buf = io.BytesIO()
    _Pickler(buf, client_id).dump(value)
    return buf.getvalue()


class _Unpickler(pickle.Unpickler):
    def persistent_load(self, pid):
        if isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "Object":
            return ObjectRef(pid[2])
        if isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "Actor":
            return ActorHandle(pid[2])
        raise pickle.UnpicklingError("unsupported persistent id %r" % (pid,))


def _loads(data):
    return _Unpickler(io.BytesIO(data)).load()


# --- the link to the embedded server -----------------------------------------------------------
class _Link:
    def __init__(self, address, token, config=None, uploads=()):
        host, _, port = address.rpartition(":")
        self._sock = socket.create_connection((host, int(port)))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._in = self._sock.makefile("rb", buffering=1 << 16)
        self._write_lock = threading.Lock()
        self._seq = itertools.count(1)
        self._waiters = {}
        self._waiters_lock = threading.Lock()
        self._closed = None
        self.info = None
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, name="rayclient-driver-link", daemon=True)
        self._reader.start()
        # The hello carries ray.init's namespace and runtime env (JSON) and local packages (uri, zip).
        hello = [token.encode(), str(os.getpid()).encode(), json.dumps(config or {}).encode()]
        for uri, data in uploads:
            hello += [uri.encode(), data]
        try:
            blobs = self.call(_KIND_HELLO, hello)
        except BaseException:
            self.close()
            raise
        self.info = json.loads(bytes(blobs[0]).decode())
        self._flusher = threading.Thread(target=self._flush_loop, name="rayclient-driver-release", daemon=True)
        self._flusher.start()

    def _read_exact(self, n):
        data = self._in.read(n)
        if data is None or len(data) != n:
            raise ConnectionError("The RayClient embedded server closed the driver's connection "
                                  "(the job was stopped, or the server shut down).")
        return data

    def _read_loop(self):
        try:
            while True:
                length, kind, seq = _HEADER.unpack(self._read_exact(_HEADER.size))
                body = self._read_exact(length - 9)
                blobs = []
                pos = 0
                while pos < len(body):
                    (n,) = _U32.unpack_from(body, pos)
                    pos += 4
                    blobs.append(body[pos:pos + n])
                    pos += n
                if kind == _KIND_LOG:
                    try:
                        sys.stdout.write(blobs[0].decode("utf-8", "replace"))
                        sys.stdout.flush()
                    except Exception:
                        pass
                    continue
                with self._waiters_lock:
                    waiter = self._waiters.pop(seq, None)
                if waiter is not None:
                    waiter[1] = blobs
                    waiter[0].set()
        except Exception as exc:  # the connection is gone: fail every waiter
            self._closed = exc
            with self._waiters_lock:
                waiters = list(self._waiters.values())
                self._waiters.clear()
            for waiter in waiters:
                waiter[0].set()

    def call(self, kind, blobs):
        """Sends a request and waits for its answer; raises the error the server answers with."""
        if self._closed is not None:
            raise ConnectionError("The driver's connection to the embedded server is closed: %s" % self._closed)
        seq = next(self._seq)
        waiter = [threading.Event(), None]
        with self._waiters_lock:
            self._waiters[seq] = waiter
        frame = self._releases_frame()  # sent first, so the server frees before it serves the request
        self._frame(frame, kind, seq, blobs)
        with self._write_lock:
            self._sock.sendall(b"".join(frame))
        waiter[0].wait()
        answer = waiter[1]
        if answer is None:
            raise ConnectionError("The driver's connection to the embedded server is closed: %s" % self._closed)
        if bytes(answer[0]) != b"\x00":
            error = _loads(bytes(answer[1]))
            raise error if isinstance(error, BaseException) else RaySystemError(repr(error))
        return answer[1:]

    @staticmethod
    def _frame(frame, kind, seq, blobs):
        frame.append(_HEADER.pack(9 + sum(4 + len(b) for b in blobs), kind, seq))
        for blob in blobs:
            frame.append(_U32.pack(len(blob)))
            frame.append(bytes(blob))

    def _releases_frame(self):
        """One release request for every object the driver dropped (its answer is not waited for)."""
        frame = []
        if self.info is not None and _releases.pending():
            gone = _releases.take()
            if gone:
                self._frame(frame, _KIND_RELEASE, next(self._seq), gone)
        return frame

    def _flush_loop(self):
        while not self._stop.wait(_RELEASE_FLUSH_SECONDS):
            if _releases.pending() and self._closed is None:
                try:
                    frame = self._releases_frame()
                    if frame:
                        with self._write_lock:
                            self._sock.sendall(b"".join(frame))
                except OSError:
                    return

    def close(self):
        self._stop.set()
        try:
            self._sock.close()
        except OSError:
            pass


_link = None
_init_lock = threading.RLock()


def _connected():
    with _init_lock:
        if _link is None:
            init()  # Ray connects on first use, too
        return _link


def _ids(blob):
    data = bytes(blob)
    return [ObjectRef(data[i:i + _ID_LENGTH]) for i in range(0, len(data), _ID_LENGTH)]


# --- the public API ----------------------------------------------------------------------------
class RayContext(dict):
    """What ray.init() returns (a dict of address info, as Ray's RayContext behaves)."""

    @property
    def address_info(self):
        return dict(self)

    @property
    def dashboard_url(self):
        return self.get("webui_url")

    def disconnect(self):
        shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutdown()


# Ray's hidden ray.init keyword arguments (worker.py pops them before its unknown-argument check).
_HIDDEN_INIT_ARGS = frozenset([
    "_enable_object_reconstruction", "_plasma_directory", "_object_spilling_directory", "_node_ip_address",
    "_driver_object_store_memory", "_memory", "_redis_username", "_redis_password", "_temp_dir",
    "_metrics_export_port", "_system_config", "_tracing_startup_hook", "_node_name", "_skip_env_hook",
    "_cgroup_path", "_include_log_monitor",
])

# The runtime_env fields the embedded server sets up (EnvironmentResolver.cs).
_RUNTIME_ENV_FIELDS = frozenset(["working_dir", "py_modules", "env_vars", "pip", "config", "excludes"])


def _merge_runtime_env(parent, child, override):
    """Ray's rule for a job's runtime env and its driver's ray.init(runtime_env=...): merged per
    field, env_vars per variable; a field or variable in both is a conflict (None) unless
    override, when the driver's wins."""
    parent = json.loads(json.dumps(parent or {}))
    child = json.loads(json.dumps(child or {}))
    parent_vars = parent.pop("env_vars", None) or {}
    child_vars = child.pop("env_vars", None) or {}
    if not override and (set(parent) & set(child) or set(parent_vars) & set(child_vars)):
        return None
    parent.update(child)
    parent_vars.update(child_vars)
    if parent_vars:
        parent["env_vars"] = parent_vars
    return parent


def _excluded(relative, excludes):
    """Ray's `excludes` (gitignore-style patterns), approximated: a pattern matches a path relative
    to the package root or any one of its names."""
    import fnmatch

    relative = relative.replace(os.sep, "/")
    for pattern in excludes:
        pattern = pattern.strip("/")
        if fnmatch.fnmatch(relative, pattern) or any(fnmatch.fnmatch(part, pattern) for part in relative.split("/")):
            return True
    return False


def _package(path, top_folder, excludes=()):
    """Zips a local directory (or one .py file for py_modules) as Ray's packaging does; returns
    (gcs:// URI named by the content's hash, zip bytes)."""
    import hashlib
    import zipfile

    path = os.path.abspath(os.path.expanduser(path))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        if os.path.isfile(path):
            if not top_folder or not path.endswith(".py"):
                raise ValueError("%s is not a directory (a local working_dir must be one; a local py_modules "
                                 "entry is a directory or a .py file)." % path)
            archive.write(path, os.path.basename(path))
        elif os.path.isdir(path):
            base = os.path.dirname(path) if top_folder else path
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", ".git")
                                 and not _excluded(os.path.relpath(os.path.join(folder, d), path), excludes))
                for name in sorted(files):
                    full = os.path.join(folder, name)
                    if not _excluded(os.path.relpath(full, path), excludes):
                        archive.write(full, os.path.relpath(full, base))
        else:
            raise ValueError("The local path %s given in ray.init(runtime_env=...) does not exist." % path)
    data = buf.getvalue()
    # zip entries carry timestamps: the name hashes the paths and contents instead
    digest = hashlib.sha1()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            digest.update(info.filename.encode())
            digest.update(archive.read(info))
    return "gcs://_ray_pkg_%s.zip" % digest.hexdigest()[:16], data


def _upload_local_packages(runtime_env, uploads):
    """Local working_dir / py_modules paths become gcs:// packages, uploaded with the hello."""
    def upload(value, top_folder):
        if not isinstance(value, str):
            raise TypeError("runtime_env paths must be strings, got %r" % (value,))
        if "://" in value:
            return value
        uri, data = _package(value, top_folder, runtime_env.get("excludes") or ())
        uploads.append((uri, data))
        return uri

    if runtime_env.get("working_dir") is not None:
        runtime_env["working_dir"] = upload(runtime_env["working_dir"], False)
    if runtime_env.get("py_modules") is not None:
        runtime_env["py_modules"] = [upload(m, True) for m in runtime_env["py_modules"]]


def init(address=None, *, num_cpus=None, num_gpus=None, resources=None, labels=None, object_store_memory=None,
         local_mode=False, ignore_reinit_error=False, include_dashboard=None, dashboard_host="127.0.0.1",
         dashboard_port=None, job_config=None, configure_logging=True, logging_level=20, logging_format=None,
         logging_config=None, log_to_driver=None, namespace=None, runtime_env=None, enable_resource_isolation=False,
         system_reserved_cpu=None, system_reserved_memory=None, **kwargs):
    """Connects to the embedded server that runs this job (found through the environment), as
    Ray's ray.init connects a job's driver to its existing cluster."""
    global _link
    system_config = kwargs.get("_system_config")
    unknown = [name for name in kwargs if name not in _HIDDEN_INIT_ARGS and name != "allow_multiple"]
    if kwargs.get("allow_multiple"):
        raise RuntimeError("`allow_multiple` argument is passed to `ray.init` when the ray client is not used. "
                           "Do not pass the `allow_multiple` to `ray.init` to fix the issue.")
    if unknown:
        # Ray's error (RuntimeError, not TypeError): most likely a typo in a keyword
        raise RuntimeError("Unknown keyword argument(s): %s" % ", ".join(unknown))
    if job_config is not None:
        namespace = namespace or getattr(job_config, "ray_namespace", None)
        runtime_env = runtime_env or getattr(job_config, "runtime_env", None)
    if runtime_env is not None and not isinstance(runtime_env, dict):
        raise TypeError("runtime_env must be a dict, got %s" % type(runtime_env).__name__)
    if runtime_env:
        for field in runtime_env:
            if field not in _RUNTIME_ENV_FIELDS:
                raise _unsupported("ray.init(runtime_env={%r: ...}) (the server sets up %s)"
                                   % (field, ", ".join(sorted(_RUNTIME_ENV_FIELDS))))
        env_vars = runtime_env.get("env_vars")
        if env_vars is not None and (not isinstance(env_vars, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items())):
            raise TypeError("runtime_env['env_vars'] must be of type Dict[str, str], got %r" % (env_vars,))
        excludes = runtime_env.get("excludes")
        if excludes is not None and (not isinstance(excludes, list) or not all(isinstance(e, str) for e in excludes)):
            raise TypeError("runtime_env['excludes'] must be of type List[str], got %r" % (excludes,))
    if namespace is not None and not isinstance(namespace, str):
        raise TypeError("namespace must be None or a string.")
    # A submitted job's runtime env (RAY_JOB_CONFIG_JSON_ENV_VAR) merged with init's, as Ray does.
    job_env = {}
    job_json = os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR")
    if job_json:
        job_env = json.loads(job_json).get("runtime_env") or {}
    merged = _merge_runtime_env(job_env, runtime_env, os.environ.get("RAY_OVERRIDE_JOB_RUNTIME_ENV") == "1")
    if merged is None:
        raise ValueError(
            "Failed to merge the Job's runtime env %s with a ray.init's runtime env %s because of a "
            "conflict. Specifying the same runtime_env fields or the same environment variable keys "
            "is not allowed. Use RAY_OVERRIDE_JOB_RUNTIME_ENV=1 to instruct Ray to combine Job and "
            "Driver's runtime environment in the event of a conflict." % (job_env, runtime_env))
    with _init_lock:
        if _link is not None:
            if ignore_reinit_error:
                return _context()
            raise RuntimeError("Maybe you called ray.init twice by accident? This error can be "
                               "suppressed by passing in 'ignore_reinit_error=True' or by calling "
                               "'ray.shutdown()' prior to 'ray.init()'.")
        # Connecting to an existing cluster (the job's), Ray refuses what would size a new one.
        if num_cpus is not None or num_gpus is not None:
            raise ValueError("When connecting to an existing cluster, num_cpus and num_gpus must not be provided.")
        if resources is not None:
            raise ValueError("When connecting to an existing cluster, resources must not be provided.")
        if labels is not None:
            raise ValueError("When connecting to an existing cluster, labels must not be provided.")
        if object_store_memory is not None:
            raise ValueError("When connecting to an existing cluster, object_store_memory must not be provided.")
        if system_config:
            raise ValueError("When connecting to an existing cluster, _system_config must not be provided.")
        link_address = os.environ.get("RAYCLIENT_DRIVER_ADDRESS")
        token = os.environ.get("RAYCLIENT_DRIVER_TOKEN")
        if not link_address or not token:
            raise ConnectionError(
                "This is the ray module of the RayClient embedded server: it works inside a job "
                "submitted to that server (rayclient job submit, or POST /api/jobs/), which sets "
                "RAYCLIENT_DRIVER_ADDRESS. Outside a job, install Ray, or use RayClient from .NET.")
        uploads = []
        if runtime_env:
            _upload_local_packages(merged, uploads)
        config = {"namespace": namespace, "runtime_env": merged if runtime_env else None,
                  "log_to_driver": log_to_driver is not False}  # Ray's default (None) forwards
        _link = _Link(link_address, token, config, uploads)
        return _context()


def _context():
    return RayContext(address=os.environ.get("RAY_ADDRESS", ""), node_ip_address="127.0.0.1",
                      node_id=_link.info["node_id"], webui_url=None, session_dir=None)


def is_initialized():
    return _link is not None


def shutdown(_exiting_interpreter=False):
    global _link
    with _init_lock:
        if _link is not None:
            _link.close()
            _link = None


def _cluster(what):
    return json.loads(bytes(_connected().call(_KIND_CLUSTER, [what.encode()])[0]).decode())


def _floats(resources):
    return {name: float(amount) for name, amount in resources.items()}  # Ray's amounts are floats


def nodes():
    table = _cluster("nodes")
    for node in table:
        node["Resources"] = _floats(node.get("Resources", {}))
    return table


def cluster_resources():
    return _floats(_cluster("cluster_resources"))


def available_resources():
    return _floats(_cluster("available_resources"))


def put(value, *, _owner=None):
    if isinstance(value, ObjectRef):
        raise TypeError("Calling 'put' on an ray.ObjectRef is not allowed. If you really want to "
                        "do this, you can wrap the ray.ObjectRef in a list and call 'put' on it.")
    link = _connected()
    return ObjectRef(bytes(link.call(_KIND_PUT, [_dumps(value, link.info["client_id"])])[0]))


def _timeout_blob(timeout):
    if timeout is None:
        return b""
    if timeout < 0:
        raise ValueError("'timeout' must be a non-negative number or None, got %r" % (timeout,))
    return repr(float(timeout)).encode()


def get(object_refs, *, timeout=None):
    single = isinstance(object_refs, ObjectRef)
    refs = [object_refs] if single else list(object_refs) if isinstance(object_refs, (list, tuple)) else None
    if refs is None or any(not isinstance(r, ObjectRef) for r in refs):
        raise ValueError("'object_refs' must either be an ObjectRef or a list of ObjectRefs.")
    if not refs:
        return []
    values = _connected().call(_KIND_GET, [_timeout_blob(timeout)] + [r.binary() for r in refs])
    results = [_loads(bytes(v)) for v in values]
    return results[0] if single else results


def wait(object_refs, *, num_returns=1, timeout=None, fetch_local=True):
    if isinstance(object_refs, ObjectRef) or not isinstance(object_refs, (list, tuple)):
        raise TypeError("wait() expected a list of ray.ObjectRef, got %s" % type(object_refs))
    refs = list(object_refs)
    if num_returns <= 0 or num_returns > len(refs):
        raise ValueError("Invalid number of objects to return %d." % num_returns)
    ready_ids = set(r.binary() for r in _ids(_connected().call(
        _KIND_WAIT, [str(num_returns).encode(), _timeout_blob(timeout)] + [r.binary() for r in refs])[0]))
    ready = [r for r in refs if r.binary() in ready_ids]
    return ready, [r for r in refs if r.binary() not in ready_ids]


def cancel(object_ref, *, force=False, recursive=True):
    if not isinstance(object_ref, ObjectRef):
        raise TypeError("ray.cancel() only supported for object refs. For actors, try ray.kill().")
    _connected().call(_KIND_CANCEL, [object_ref.binary(), b"1" if force else b"0", b"1" if recursive else b"0"])


def kill(actor_handle, *, no_restart=True):
    if not isinstance(actor_handle, ActorHandle):
        raise ValueError("ray.kill() only supported for actors. For tasks, try ray.cancel(). Got: %s." % type(actor_handle))
    _connected().call(_KIND_KILL_ACTOR, [actor_handle._actor_id, b"1" if no_restart else b"0"])


def get_actor(name, namespace=None):
    if not name:
        raise ValueError("Please supply a non-empty value to get_actor")
    link = _connected()
    return ActorHandle(bytes(link.call(_KIND_GET_ACTOR, [name.encode(), (namespace or "").encode()])[0]))


def _options_blob(options):
    return pickle.dumps(options, protocol=5)


class RemoteFunction:
    """What @ray.remote makes of a function: .remote() submits a task to the embedded server."""

    def __init__(self, function, options):
        self._function = function
        self._options = dict(options)
        self.__wrapped__ = function
        self.__name__ = getattr(function, "__name__", "remote_function")
        self.__qualname__ = getattr(function, "__qualname__", self.__name__)
        self.__module__ = getattr(function, "__module__", None)
        self.__doc__ = getattr(function, "__doc__", None)
        self._pickled = None

    def options(self, **options):
        merged = dict(self._options)
        merged.update(options)
        return RemoteFunction(self._function, merged)

    def remote(self, *args, **kwargs):
        link = _connected()
        if self._pickled is None:
            self._pickled = _dumps(self._function, link.info["client_id"])
        name = "%s.%s" % (self.__module__, self.__qualname__)
        payload = _dumps((list(args), dict(kwargs)), link.info["client_id"])
        refs = _ids(link.call(_KIND_SUBMIT_TASK, [name.encode(), self._pickled, payload, _options_blob(self._options)])[0])
        return refs[0] if int(self._options.get("num_returns", 1)) == 1 else refs

    def bind(self, *args, **kwargs):
        raise _unsupported("RemoteFunction.bind (Ray DAGs)")

    def __call__(self, *args, **kwargs):
        raise TypeError("Remote functions cannot be called directly. Instead of running "
                        "'%s()', try '%s.remote()'." % (self.__name__, self.__name__))


class ActorMethod:
    def __init__(self, actor_id, name, num_returns=1):
        self._actor_id = actor_id
        self._name = name
        self._num_returns = num_returns

    def options(self, num_returns=1, **_ignored):
        return ActorMethod(self._actor_id, self._name, num_returns)

    def remote(self, *args, **kwargs):
        link = _connected()
        payload = _dumps((list(args), dict(kwargs)), link.info["client_id"])
        refs = _ids(link.call(_KIND_SUBMIT_METHOD, [self._actor_id, self._name.encode(), payload,
                                                    str(self._num_returns).encode()])[0])
        return refs[0] if self._num_returns == 1 else refs

    def __call__(self, *args, **kwargs):
        raise TypeError("Actor methods cannot be called directly. Instead of running "
                        "'object.%s()', try 'object.%s.remote()'." % (self._name, self._name))


class ActorHandle:
    def __init__(self, actor_id):
        self._actor_id = bytes(actor_id)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return ActorMethod(self._actor_id, name)

    def __repr__(self):
        return "Actor(%s)" % self._actor_id.hex()


class ActorClass:
    """What @ray.remote makes of a class: .remote() creates an actor on the embedded server."""

    def __init__(self, cls, options):
        self._cls = cls
        self._options = dict(options)
        self.__wrapped__ = cls
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__
        self.__doc__ = cls.__doc__

    def options(self, **options):
        merged = dict(self._options)
        merged.update(options)
        return ActorClass(self._cls, merged)

    def remote(self, *args, **kwargs):
        link = _connected()
        payload = _dumps((list(args), dict(kwargs)), link.info["client_id"])
        actor_id = link.call(_KIND_CREATE_ACTOR, [self.__name__.encode(), _dumps(self._cls, link.info["client_id"]),
                                                  payload, _options_blob(self._options)])[0]
        return ActorHandle(bytes(actor_id))

    def bind(self, *args, **kwargs):
        raise _unsupported("ActorClass.bind (Ray DAGs)")

    def __call__(self, *args, **kwargs):
        raise TypeError("Actors cannot be instantiated directly. Instead of '%s()', use '%s.remote()'."
                        % (self.__name__, self.__name__))


def remote(*args, **options):
    def make(target):
        return ActorClass(target, options) if isinstance(target, type) else RemoteFunction(target, options)

    if len(args) == 1 and not options and callable(args[0]):
        return make(args[0])
    if args:
        raise TypeError("The @ray.remote decorator must be applied either with no arguments and "
                        "no parentheses, for example '@ray.remote', or it must be applied using "
                        "some of the arguments in the list ['num_returns', 'num_cpus', ...], for "
                        "example '@ray.remote(num_returns=2, resources={\"CustomResource\": 1})'.")
    return make


def method(*args, **kwargs):
    def decorate(fn):
        return fn
    return decorate


class RuntimeContext:
    """ray.get_runtime_context() of a job driver."""

    def get_job_id(self):
        return _connected().info["job_id"]

    @property
    def job_id(self):
        return self.get_job_id()

    def get_node_id(self):
        return _connected().info["node_id"]

    @property
    def node_id(self):
        return self.get_node_id()

    @property
    def namespace(self):
        return _connected().info["namespace"]

    def get_runtime_env_string(self):
        return json.dumps(_connected().info["runtime_env"])

    @property
    def runtime_env(self):
        return dict(_connected().info["runtime_env"])

    def get_submission_id(self):
        return _connected().info["submission_id"]

    def get_task_id(self):
        return None  # the driver runs no task

    def get_actor_id(self):
        return None

    def get(self):
        return {"job_id": self.get_job_id(), "node_id": self.get_node_id(), "namespace": self.namespace}

    def __getattr__(self, name):
        raise _unsupported("ray.get_runtime_context().%s" % name)


def get_runtime_context():
    _connected()
    return RuntimeContext()


def __getattr__(name):
    # PEP 562: anything of Ray's API this module does not have says so by name.
    if name.startswith("__"):
        raise AttributeError(name)
    raise AttributeError("ray.%s is not supported by the ray module of the RayClient embedded "
                         "server (a job driver on one machine); run the job on a Ray cluster for it." % name)
