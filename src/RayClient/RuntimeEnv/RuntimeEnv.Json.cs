using System.Text.Json;
using System.Text.Json.Nodes;
using RayClient.Packaging;

namespace RayClient;

public sealed partial class RuntimeEnv
{
    private static readonly JsonSerializerOptions s_indented = new() { WriteIndented = true };

    /// <summary>
    /// Reads a runtime env from JSON in the form of <c>ray job submit --runtime-env-json</c>, e.g.
    /// <c>{"working_dir": ".", "pip": ["requests"], "env_vars": {"A": "1"}}</c>. Types are checked
    /// field by field; keys with a null value are ignored, as Ray drops <c>None</c>; unknown keys
    /// become <see cref="Plugins"/>. Files named in <c>pip</c>/<c>conda</c> are read later, by
    /// <see cref="Validate"/>.
    /// </summary>
    /// <exception cref="RayRuntimeEnvException">The JSON is malformed, not an object, or a field has the wrong type.</exception>
    public static RuntimeEnv FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new RayRuntimeEnvException($"The runtime env is not valid JSON: {e.Message}", e);
        }

        if (node is not JsonObject obj)
        {
            throw new RayRuntimeEnvException($"The runtime env must be a JSON object, got {RuntimeEnvJson.PyType(node)}.");
        }

        return FromJsonObject(obj);
    }

    /// <summary>
    /// Reads a runtime env from YAML, as <c>ray job submit --runtime-env env.yaml</c> reads its file:
    /// PyYAML's <c>yaml.safe_load</c> rules (YAML 1.1, so <c>yes</c>/<c>no</c>/<c>on</c>/<c>off</c>
    /// are booleans and <c>0755</c> is octal), then the same checks as <see cref="FromJson"/>. An
    /// empty document is an empty env. Values Ray could not send as JSON either (dates, binary,
    /// <c>.inf</c>/<c>.nan</c>) are errors rather than silently changed.
    /// </summary>
    /// <exception cref="RayRuntimeEnvException">The YAML is malformed or holds a value Ray cannot send (the message has the line and column), is not a mapping, or a field has the wrong type.</exception>
    public static RuntimeEnv FromYaml(string yaml)
    {
        ArgumentNullException.ThrowIfNull(yaml);
        JsonNode? node;
        try
        {
            node = PyYaml.SafeLoad(yaml);
        }
        catch (FormatException e)
        {
            throw new RayRuntimeEnvException($"The runtime env is not valid YAML: {e.Message}", e);
        }

        return node switch
        {
            null => FromJsonObject([]),
            JsonObject obj => FromJsonObject(obj),
            _ => throw new RayRuntimeEnvException($"The runtime env YAML must hold a mapping, got {RuntimeEnvJson.PyType(node)}."),
        };
    }

    /// <summary>Writes the env as JSON in Ray's normalised form (pip/uv as dicts, config with defaults, <c>_nsight</c>).</summary>
    public string ToJson() => ToJsonObject().ToJsonString();

    /// <summary>Writes the env as JSON, optionally indented.</summary>
    public string ToJson(bool indented) => indented ? ToJsonObject().ToJsonString(s_indented) : ToJson();

    /// <summary>
    /// The env as a Python dict of plain values (str, bool, int, float, list, dict), ready to be
    /// pickled into <c>JobConfig.runtime_env</c> or a task's options.
    /// </summary>
    public Dictionary<string, object?> ToPythonDict() =>
        (Dictionary<string, object?>)RuntimeEnvJson.ToPython(ToJsonObject())!;

    internal static RuntimeEnv FromJsonObject(JsonObject obj)
    {
        string? workingDir = null;
        List<string>? pyModules = null;
        RuntimeEnvPip? pip = null;
        RuntimeEnvUv? uv = null;
        RuntimeEnvConda? conda = null;
        Dictionary<string, string>? envVars = null;
        List<string>? excludes = null;
        RuntimeEnvConfig? config = null;
        JsonObject? container = null;
        string? imageUri = null;
        List<string>? javaJars = null;
        string? setupHook = null;
        string? pyExecutable = null;
        JsonNode? nsight = null;
        Dictionary<string, JsonNode?>? plugins = null;

        foreach (var (key, value) in obj)
        {
            if (value is null || value.GetValueKind() == JsonValueKind.Null)
            {
                continue;
            }

            switch (key)
            {
                case "working_dir":
                    workingDir = RuntimeEnvJson.ReadString(value, key);
                    break;
                case "py_modules":
                    pyModules = RuntimeEnvJson.ReadStringList(value, key);
                    break;
                case "pip":
                    pip = RuntimeEnvPip.Parse(value);
                    break;
                case "uv":
                    uv = RuntimeEnvUv.Parse(value);
                    break;
                case "conda":
                    conda = RuntimeEnvConda.Parse(value);
                    break;
                case "env_vars":
                    envVars = RuntimeEnvJson.ReadStringMap(value, key);
                    break;
                case "excludes":
                    excludes = RuntimeEnvJson.ReadStringList(value, key);
                    break;
                case "config":
                    config = RuntimeEnvConfig.Parse(value);
                    break;
                case "container":
                    container = value as JsonObject
                        ?? throw new RayRuntimeEnvException($"runtime_env['container'] must be of type dict, got {RuntimeEnvJson.PyType(value)}.");
                    container = (JsonObject)container.DeepClone();
                    break;
                case "image_uri":
                    imageUri = RuntimeEnvJson.ReadString(value, key);
                    break;
                case "java_jars":
                    javaJars = RuntimeEnvJson.ReadStringList(value, key);
                    break;
                case "worker_process_setup_hook":
                    setupHook = RuntimeEnvJson.ReadString(value, key);
                    break;
                case "py_executable":
                    pyExecutable = RuntimeEnvJson.ReadString(value, key);
                    break;
                case "nsight" or "_nsight":
                    // RuntimeEnv(nsight=...) stores the value under "_nsight".
                    nsight = value.DeepClone();
                    break;
                default:
                    (plugins ??= new Dictionary<string, JsonNode?>(StringComparer.Ordinal))[key] = value.DeepClone();
                    break;
            }
        }

        return new RuntimeEnv
        {
            WorkingDir = workingDir,
            PyModules = pyModules,
            Pip = pip,
            Uv = uv,
            Conda = conda,
            EnvVars = envVars,
            Excludes = excludes,
            Config = config,
            Container = container,
            ImageUri = imageUri,
            JavaJars = javaJars,
            WorkerProcessSetupHook = setupHook,
            PyExecutable = pyExecutable,
            Nsight = nsight,
            Plugins = plugins,
        };
    }

    /// <summary>A fresh JSON object with Ray's key names; key order follows Ray's <c>known_fields</c>, plugins last.</summary>
    internal JsonObject ToJsonObject()
    {
        var obj = new JsonObject();
        if (PyModules is not null)
        {
            obj["py_modules"] = RuntimeEnvJson.ToArray(PyModules);
        }

        if (JavaJars is not null)
        {
            obj["java_jars"] = RuntimeEnvJson.ToArray(JavaJars);
        }

        if (WorkingDir is not null)
        {
            obj["working_dir"] = WorkingDir;
        }

        if (Conda is not null)
        {
            obj["conda"] = Conda.ToJson();
        }

        if (Pip is not null)
        {
            obj["pip"] = Pip.ToJson();
        }

        if (Uv is not null)
        {
            obj["uv"] = Uv.ToJson();
        }

        if (Container is not null)
        {
            obj["container"] = Container.DeepClone();
        }

        if (Excludes is not null)
        {
            obj["excludes"] = RuntimeEnvJson.ToArray(Excludes);
        }

        if (EnvVars is not null)
        {
            var vars = new JsonObject();
            foreach (var (name, value) in EnvVars)
            {
                vars[name] = value;
            }

            obj["env_vars"] = vars;
        }

        if (Config is not null)
        {
            obj["config"] = Config.ToJson();
        }

        if (WorkerProcessSetupHook is not null)
        {
            obj["worker_process_setup_hook"] = WorkerProcessSetupHook;
        }

        if (ImageUri is not null)
        {
            obj["image_uri"] = ImageUri;
        }

        if (PyExecutable is not null)
        {
            obj["py_executable"] = PyExecutable;
        }

        if (Nsight is not null)
        {
            obj["_nsight"] = Nsight.DeepClone();
        }

        if (Plugins is not null)
        {
            foreach (var (key, value) in Plugins)
            {
                if (value is not null && !obj.ContainsKey(key))
                {
                    obj[key] = value.DeepClone();
                }
            }
        }

        return obj;
    }
}
