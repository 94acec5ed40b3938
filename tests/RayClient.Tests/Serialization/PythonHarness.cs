namespace RayClient.Tests.Serialization;

/// <summary>
/// Python code shared by the pickle tests: stand-ins for the Ray modules whose names appear in
/// pickles (written for these tests, not copied from Ray), and helpers to load and dump pickles
/// with Ray-style persistent ids.
/// </summary>
internal static class PythonHarness
{
    public const string Prelude = """
        import sys, types, pickle, pickletools, json, math, io, copyreg, hashlib, collections, decimal, datetime, array, uuid, dataclasses
        from typing import NamedTuple, Optional, Dict

        def _module(name):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                n = ".".join(parts[:i])
                if n not in sys.modules:
                    m = types.ModuleType(n)
                    m.__path__ = []
                    sys.modules[n] = m
                    if i > 1:
                        setattr(sys.modules[".".join(parts[:i - 1])], parts[i - 1], m)
            return sys.modules[name]

        _cp = _module("ray.util.client.client_pickler")
        _StubFields = NamedTuple("PickleStub", [("type", str), ("client_id", str), ("ref_id", bytes),
                                                ("name", Optional[str]), ("baseline_options", Optional[Dict])])

        class PickleStub(_StubFields):
            # Like Ray's: fall back to the generic object reducer -> copyreg._reconstructor.
            def __reduce__(self):
                return object.__reduce__(self)

        class PickleStubNewObj(_StubFields):
            # A NamedTuple subclass with the default reducer (CPython emits NEWOBJ).
            pass

        for _cls in (PickleStub, PickleStubNewObj):
            _cls.__module__ = "ray.util.client.client_pickler"
            _cls.__qualname__ = _cls.__name__ = "PickleStub"
        _cp.PickleStub = PickleStub

        _jc = _module("ray.job_config")
        class JobConfig:
            def __init__(self, json=None):
                self.json = json
            @classmethod
            def from_json(cls, job_config_json):
                return cls(job_config_json)
            def __eq__(self, other):
                return isinstance(other, JobConfig) and self.json == other.json
            def __repr__(self):
                return "JobConfig.from_json(%r)" % (self.json,)
        JobConfig.__module__ = "ray.job_config"
        _jc.JobConfig = JobConfig

        _tasks = _module("fakemod.tasks")
        def add(a, b):
            return a + b
        add.__module__ = "fakemod.tasks"
        _tasks.add = add

        _mymod = _module("mymod")
        @dataclasses.dataclass
        class Point:
            x: int
            y: int
        Point.__module__ = "mymod"
        _mymod.Point = Point
        class MyError(Exception):
            pass
        MyError.__module__ = "mymod"
        _mymod.MyError = MyError
        class KwOnly:
            # Pickled with NEWOBJ_EX (keyword arguments to __new__) from protocol 4.
            def __new__(cls, a, *, k):
                self = object.__new__(cls)
                self.a, self.k = a, k
                return self
            def __getnewargs_ex__(self):
                return ((self.a,), {"k": self.k})
            def __eq__(self, other):
                return type(other) is KwOnly and (self.a, self.k) == (other.a, other.k)
        KwOnly.__module__ = "mymod"
        _mymod.KwOnly = KwOnly

        class FakeRef:
            # Stands for a ray.ObjectRef on the server; pickled as a PickleStub persistent id.
            def __init__(self, ref_id, stub_class=None):
                self.ref_id = ref_id
                self.stub_class = stub_class

        class ServerLikePickler(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, FakeRef):
                    return (obj.stub_class or _cp.PickleStub)("Object", "c0ffee" * 5 + "ab", obj.ref_id, None, None)
                return None

        def dumps(value, protocol):
            f = io.BytesIO()
            ServerLikePickler(f, protocol=protocol).dump(value)
            return f.getvalue()

        def dumps_newobj_stub(value, protocol):
            # Pickle with the NEWOBJ-shaped PickleStub class standing in for Ray's.
            _cp.PickleStub = PickleStubNewObj
            try:
                return dumps(value, protocol)
            finally:
                _cp.PickleStub = PickleStub

        class ClientLikeUnpickler(pickle.Unpickler):
            # Like Ray's server: the persistent id must be a real PickleStub instance.
            def persistent_load(self, pid):
                assert isinstance(pid, PickleStub), "persistent id is a %r" % (type(pid),)
                return ("STUB", pid.type, pid.client_id, pid.ref_id, pid.name, pid.baseline_options)

        def load(data):
            return ClientLikeUnpickler(io.BytesIO(data)).load()

        def same(a, b):
            if type(a) is not type(b):
                return False
            if isinstance(a, float):
                if math.isnan(a) or math.isnan(b):
                    return math.isnan(a) and math.isnan(b)
                return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
            if isinstance(a, (list, tuple)):
                return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
            if isinstance(a, dict):
                return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
            return a == b

        def max_opcode_protocol(data):
            return max(op.proto for op, _, _ in pickletools.genops(data))

        def pattern(n):
            # Deterministic bytes, the same as PickleTestData.Pattern in C#.
            return bytes((i * 7 + 3) % 256 for i in range(n)) if n < 4096 else (bytes((i * 7 + 3) % 256 for i in range(256)) * (n // 256 + 1))[:n]
        """;
}
