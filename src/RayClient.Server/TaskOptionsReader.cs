using System.Collections;
using System.Globalization;
using Google.Protobuf;
using RayClient.Serialization;

namespace RayClient.Server;

/// <summary>The <c>.options()</c> dict of a task (spec §6.3), read without Python.</summary>
internal sealed class TaskOptionsReader
{
    private readonly Dictionary<string, object?> _values;

    private TaskOptionsReader(Dictionary<string, object?> values) => _values = values;

    public static TaskOptionsReader Read(ByteString? pickled)
    {
        var values = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (pickled is null || pickled.IsEmpty)
        {
            return new TaskOptionsReader(values);
        }

        object? decoded;
        try
        {
            decoded = PickleSerializer.Deserialize(pickled.Memory);
        }
        catch (RaySerializationException ex)
        {
            // Ray decodes the options inside Schedule and answers ClientTaskTicket(valid=False)
            // with the exception; the Datapath goes on.
            throw new TicketException(ServerErrors.Unpickling($"The task options could not be unpickled: {ex.Message}"));
        }

        if (decoded is not IDictionary dict)
        {
            throw new TicketException(ServerErrors.Pickle("builtins", "TypeError", "Task options must be a pickled dict."));
        }

        foreach (DictionaryEntry entry in dict)
        {
            if (entry.Key is string key)
            {
                values[key] = entry.Value;
            }
        }

        return new TaskOptionsReader(values);
    }

    public int NumReturns => GetInt("num_returns") is { } n ? (n >= 0 ? n : throw Invalid("num_returns must be >= 0")) : 1;

    public int? MaxRetries => GetInt("max_retries");

    public string? Name => _values.GetValueOrDefault("name") as string;

    public string? Namespace => _values.GetValueOrDefault("namespace") as string;

    public bool Detached => _values.GetValueOrDefault("lifetime") as string == "detached";

    public bool GetIfExists => _values.GetValueOrDefault("get_if_exists") is true;

    public int MaxRestarts => GetInt("max_restarts") ?? 0;

    public int MaxTaskRetries => GetInt("max_task_retries") ?? 0;

    public int MaxConcurrency => GetInt("max_concurrency") is { } n ? (n >= 1 ? n : throw Invalid("max_concurrency must be >= 1")) : 1;

    /// <summary>The task's own runtime env: a dict or Ray's <c>RuntimeEnv</c> (a dict subclass), or null.</summary>
    public IReadOnlyDictionary<string, object?>? RuntimeEnv
    {
        get
        {
            try
            {
                return PyMapping.ToRuntimeEnv(_values.GetValueOrDefault("runtime_env"), "runtime_env");
            }
            catch (InvalidOperationException ex)
            {
                throw Invalid(ex.Message);
            }
        }
    }

    /// <summary>The resource demand, Ray-style: CPU defaults to <paramref name="defaultCpus"/>, zero amounts dropped.</summary>
    public Dictionary<string, double> Resources(double defaultCpus)
    {
        var demand = new Dictionary<string, double>(StringComparer.Ordinal)
        {
            ["CPU"] = GetDouble("num_cpus") ?? defaultCpus,
            ["GPU"] = GetDouble("num_gpus") ?? 0,
        };
        if (GetDouble("memory") is { } memory)
        {
            demand["memory"] = memory;
        }

        if (_values.GetValueOrDefault("resources") is IDictionary custom)
        {
            foreach (DictionaryEntry entry in custom)
            {
                if (entry.Key is not string name || name is "CPU" or "GPU")
                {
                    throw Invalid("Use num_cpus and num_gpus for CPU and GPU, not resources.");
                }

                demand[name] = ToDouble(entry.Value) ?? throw Invalid($"Resource {name} must be a number.");
            }
        }

        foreach (var (name, amount) in demand)
        {
            if (amount < 0)
            {
                throw Invalid($"Resource {name} must be >= 0, not {amount.ToString(CultureInfo.InvariantCulture)}.");
            }
        }

        return demand.Where(kv => kv.Value > 0).ToDictionary(StringComparer.Ordinal);
    }

    private int? GetInt(string key) => _values.GetValueOrDefault(key) switch
    {
        null => null,
        int i => i,
        long l when l is >= int.MinValue and <= int.MaxValue => (int)l,
        long or System.Numerics.BigInteger => throw Invalid($"{key} is out of range."),
        _ => throw Invalid($"{key} must be an int."),
    };

    private double? GetDouble(string key) => ToDouble(_values.GetValueOrDefault(key));

    private static double? ToDouble(object? value) => value switch
    {
        null => null,
        int i => i,
        long l => l,
        double d => d,
        _ => null,
    };

    private static TicketException Invalid(string message) => new(ServerErrors.Pickle("builtins", "ValueError", message));
}

/// <summary>Ray's runtime env inheritance: a task's fields replace the job's, except env_vars, which are merged (the task wins).</summary>
internal static class RuntimeEnvMerge
{
    public static Dictionary<string, object?> Merge(IReadOnlyDictionary<string, object?> job, IReadOnlyDictionary<string, object?> task)
    {
        var merged = new Dictionary<string, object?>(job, StringComparer.Ordinal);
        foreach (var (key, value) in task)
        {
            if (key == "env_vars" && value is IDictionary taskVars && job.GetValueOrDefault("env_vars") is IDictionary jobVars)
            {
                var vars = new Dictionary<object, object?>();
                foreach (DictionaryEntry e in jobVars)
                {
                    vars[e.Key] = e.Value;
                }

                foreach (DictionaryEntry e in taskVars)
                {
                    vars[e.Key] = e.Value;
                }

                merged[key] = vars;
            }
            else
            {
                merged[key] = value;
            }
        }

        return merged;
    }
}
