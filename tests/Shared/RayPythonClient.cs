namespace RayClient.Tests.Serialization;

/// <summary>
/// Python stand-ins for what Ray's own Python client pickles (written for these tests from the
/// attribute layouts in ray-versions.md §4.2 and Ray's sources, not copied): a <c>JobConfig</c>
/// instance (NEWOBJ + BUILD of its instance dict, as <c>pickle.dumps(job_config)</c> in
/// ray:python/ray/util/client/worker.py <c>_server_init</c>) holding a <c>RuntimeEnv</c> (a dict
/// subclass: NEWOBJ + SETITEMS), option dicts, and <c>ClientObjectRef</c>s pickled as
/// <c>PickleStub</c> persistent ids (ray:python/ray/util/client/client_pickler.py). Appended to
/// <see cref="PythonHarness.Prelude"/>.
/// </summary>
internal static class RayPythonClient
{
    public const string Script = """
        import base64 as _b64

        _rt = _module("ray.runtime_env.runtime_env")

        class RuntimeEnvConfig(dict):
            def __init__(self, setup_timeout_seconds=600, eager_install=True):
                super().__init__()
                self["setup_timeout_seconds"] = setup_timeout_seconds
                self["eager_install"] = eager_install

        class RuntimeEnv(dict):
            # Like Ray's: a dict subclass without instance attributes, filled through __setitem__.
            def __init__(self, **fields):
                super().__init__()
                for key, value in fields.items():
                    if value is not None:
                        self[key] = value

        class StatefulRuntimeEnv(RuntimeEnv):
            # A dict subclass that also has instance attributes: NEWOBJ + SETITEMS + BUILD.
            def __init__(self, **fields):
                super().__init__(**fields)
                self.validated = True

        for _c in (RuntimeEnv, RuntimeEnvConfig, StatefulRuntimeEnv):
            _c.__module__ = "ray.runtime_env.runtime_env"
            setattr(_rt, _c.__name__, _c)

        class RayJobConfig:
            # ray.job_config.JobConfig as the server unpickles it: no __reduce__, no __slots__.
            pass

        RayJobConfig.__module__ = "ray.job_config"
        RayJobConfig.__qualname__ = RayJobConfig.__name__ = "JobConfig"

        # The instance attributes of JobConfig per Ray release range (ray-versions.md §4.2).
        LAYOUTS = ["2.0", "2.3", "2.5", "2.10", "2.30"]

        def _version(layout):
            return tuple(int(p) for p in layout.split("."))

        def ray_job_config(layout, runtime_env, namespace=None):
            v = _version(layout)
            jc = RayJobConfig()
            jc.jvm_options = []
            jc.code_search_path = []
            if v >= (2, 5):
                jc._client_job = False
                jc._py_driver_sys_path = []
            else:
                jc.client_job = False
                if v >= (2, 3):
                    jc.py_driver_sys_path = []
            jc.metadata = {}
            jc.ray_namespace = namespace
            jc.runtime_env = runtime_env
            jc._cached_pb = None
            jc._default_actor_lifetime = 1
            if v == (2, 10):
                jc._driver_node_id_bytes = None
            if v >= (2, 30):
                jc.py_logging_config = None
            return jc

        def dumps_job_config(jc, protocol=4):
            # ray.job_config.JobConfig must resolve to the stand-in while pickling.
            module = _module("ray.job_config")
            saved = getattr(module, "JobConfig", None)
            module.JobConfig = RayJobConfig
            try:
                return pickle.dumps(jc, protocol=protocol)
            finally:
                module.JobConfig = saved

        class ClientObjectRef:
            def __init__(self, ref_id):
                self.id = ref_id

        class ClientPickler(pickle.Pickler):
            # Ray's client pickler: refs become PickleStub("Object", client_id, id, None, None).
            def __init__(self, client_id, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.client_id = client_id
            def persistent_id(self, obj):
                if isinstance(obj, ClientObjectRef):
                    return _cp.PickleStub("Object", self.client_id, obj.id, None, None)
                return None

        def dumps_from_client(value, client_id, protocol=5):
            f = io.BytesIO()
            ClientPickler(client_id, f, protocol=protocol).dump(value)
            return f.getvalue()

        def opcodes(data):
            return sorted({op.name for op, _, _ in pickletools.genops(data)})

        def b64(data):
            return _b64.b64encode(data).decode()
        """;
}
