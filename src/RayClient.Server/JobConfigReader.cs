using System.Collections;
using RayClient.Serialization;

namespace RayClient.Server;

/// <summary>
/// Reads namespace and runtime env out of <c>InitRequest.job_config</c> without running Python: the
/// pickle is either <c>JobConfig.from_json(dict)</c> (RayClient, ray-versions.md §4.3) or a
/// <c>JobConfig</c> instance restored by <c>BUILD</c> (Ray's Python client: <c>pickle.dumps(job_config)</c>
/// in ray:python/ray/util/client/worker.py <c>_server_init</c>), in any release's attribute layout
/// (ray-versions.md §4.2). Only <c>ray_namespace</c> and <c>runtime_env</c> are read, so the
/// attributes releases added or renamed do not matter.
/// </summary>
internal static class JobConfigReader
{
    public static (string? Namespace, Dictionary<string, object?>? RuntimeEnv) Read(ReadOnlyMemory<byte> pickle)
    {
        if (pickle.IsEmpty)
        {
            return (null, null);
        }

        var value = PickleSerializer.Deserialize(pickle);
        IDictionary? fields = value switch
        {
            PyObject { Args.Count: > 0, State: null } call when call.Args[0] is IDictionary json => json,
            PyObject instance => PyMapping.StateOf(instance),
            IDictionary dict => dict,
            _ => null,
        };
        if (fields is null)
        {
            throw new InvalidOperationException($"The job config is a pickled {PyTypeName.Of(value)}, neither JobConfig.from_json(dict) nor a JobConfig instance.");
        }

        var ns = fields.Contains("ray_namespace") ? fields["ray_namespace"] as string : null;
        var env = fields.Contains("runtime_env") ? PyMapping.ToRuntimeEnv(fields["runtime_env"], "The job config's runtime_env") : null;
        return (ns, env);
    }
}

/// <summary>
/// The dict-like shapes Ray's Python side pickles: plain dicts; dict subclasses such as Ray's
/// <c>RuntimeEnv</c> and <c>RuntimeEnvConfig</c> (ray:python/ray/runtime_env/runtime_env.py), which
/// arrive as <c>NEWOBJ</c> + <c>SETITEMS</c> (items in <see cref="PyObject.DictItems"/>), possibly with
/// a <c>BUILD</c> state of their own; and objects whose instance dict is the data.
/// </summary>
internal static class PyMapping
{
    /// <summary>Dicts and lists nested deeper than this in a runtime env are refused (a peer chooses the depth).</summary>
    private const int MaxDepth = 64;

    /// <summary>The instance dict of an object restored by BUILD: <c>state</c>, or the dict of a <c>(dict, slots)</c> state.</summary>
    public static IDictionary? StateOf(PyObject instance) => instance.State switch
    {
        IDictionary state => state,
        PyTuple { Count: 2 } pair when pair[0] is IDictionary state => state,
        PyTuple { Count: 2 } pair when pair[0] is null && pair[1] is IDictionary slots => slots,
        _ => null,
    };

    /// <summary>The mapping a dict-like value stands for, or null when it is not dict-like.</summary>
    public static IDictionary? AsMapping(object? value) => value switch
    {
        IDictionary dict => dict,
        // A dict subclass: its items are the mapping, whatever attributes BUILD gave it.
        PyObject { DictItems: IDictionary items } => items,
        PyObject { DictItems: { } items } => items.ToDictionary(),
        PyObject instance when StateOf(instance) is { } state => state,
        // A dict subclass pickled while empty has neither items nor state.
        PyObject { State: null, ListItems: null, Args.Count: 0 } => new Dictionary<object, object?>(),
        _ => null,
    };

    /// <summary>
    /// A runtime env (job config or task options) as plain .NET values: string keys; dict-like
    /// values inside (e.g. a <c>RuntimeEnvConfig</c> under <c>config</c>) become dictionaries too.
    /// </summary>
    /// <exception cref="InvalidOperationException">The value is not dict-like, or nests too deeply.</exception>
    public static Dictionary<string, object?>? ToRuntimeEnv(object? value, string what)
    {
        if (value is null)
        {
            return null;
        }

        var mapping = AsMapping(value)
            ?? throw new InvalidOperationException($"{what} is a pickled {PyTypeName.Of(value)}, not a dict or a RuntimeEnv.");
        var env = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var entry in PythonValues.Entries(mapping))
        {
            if (entry.Key is string key)
            {
                env[key] = Plain(entry.Value, 1, what);
            }
        }

        return env;
    }

    private static object? Plain(object? value, int depth, string what)
    {
        if (value is null or string or bool or int or long or double)
        {
            return value;
        }

        if (depth > MaxDepth)
        {
            throw new InvalidOperationException($"{what} is nested more than {MaxDepth} levels deep.");
        }

        if (value is IDictionary or PyObject && AsMapping(value) is { } mapping)
        {
            var copy = new Dictionary<object, object?>(mapping.Count);
            foreach (var entry in PythonValues.Entries(mapping))
            {
                copy[entry.Key] = Plain(entry.Value, depth + 1, what);
            }

            return copy;
        }

        if (value is List<object?> list)
        {
            return list.Select(item => Plain(item, depth + 1, what)).ToList();
        }

        if (value is PyTuple tuple)
        {
            return tuple.Select(item => Plain(item, depth + 1, what)).ToList();
        }

        return value;
    }
}
