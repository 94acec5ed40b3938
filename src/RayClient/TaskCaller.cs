namespace RayClient;

/// <summary>
/// Per-call options of a remote function call, ending in <see cref="Remote"/> (as Ray Java's
/// <c>TaskCaller</c>). Options become the pickled <c>.options(...)</c> dict Ray's server applies.
/// </summary>
/// <typeparam name="TResult">The .NET type the result is read as.</typeparam>
public sealed class TaskCaller<TResult>
{
    private readonly RaySession _session;
    private readonly PyFunction<TResult> _function;
    private readonly object?[] _args;
    private readonly TaskOptionsBuilder _options = new();
    private Dictionary<string, object?>? _kwargs;

    internal TaskCaller(RaySession session, PyFunction<TResult> function, object?[] args)
    {
        _session = session;
        _function = function;
        _args = args;
    }

    /// <summary>Keyword arguments of the Python call.</summary>
    public TaskCaller<TResult> SetKeywordArgument(string name, object? value)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        (_kwargs ??= [])[name] = value;
        return this;
    }

    /// <summary>CPUs the task needs (Ray's <c>num_cpus</c>; Ray's default is 1).</summary>
    public TaskCaller<TResult> SetNumCpus(double cpus)
    {
        _options.Set("num_cpus", TaskOptionsBuilder.NonNegative(cpus, nameof(cpus)));
        return this;
    }

    /// <summary>GPUs the task needs (Ray's <c>num_gpus</c>; default 0).</summary>
    public TaskCaller<TResult> SetNumGpus(double gpus)
    {
        _options.Set("num_gpus", TaskOptionsBuilder.NonNegative(gpus, nameof(gpus)));
        return this;
    }

    /// <summary>A resource requirement; <c>CPU</c> and <c>GPU</c> map to <c>num_cpus</c>/<c>num_gpus</c> as in Ray Java.</summary>
    public TaskCaller<TResult> SetResource(string name, double quantity)
    {
        _options.SetResource(name, quantity);
        return this;
    }

    /// <summary>Several resource requirements at once.</summary>
    public TaskCaller<TResult> SetResources(IReadOnlyDictionary<string, double> resources)
    {
        ArgumentNullException.ThrowIfNull(resources);
        foreach (var (name, quantity) in resources)
        {
            _options.SetResource(name, quantity);
        }

        return this;
    }

    /// <summary>How often the task is retried when its worker dies (Ray's <c>max_retries</c>; -1 = forever; Ray's default is 3).</summary>
    public TaskCaller<TResult> SetMaxRetries(int maxRetries)
    {
        _options.Set("max_retries", maxRetries >= -1 ? maxRetries : throw new ArgumentOutOfRangeException(nameof(maxRetries), maxRetries, "Must be -1 or more."));
        return this;
    }

    /// <summary>Also retry when the task raises a Python exception (Ray's <c>retry_exceptions</c>).</summary>
    public TaskCaller<TResult> SetRetryExceptions(bool retry)
    {
        _options.Set("retry_exceptions", retry);
        return this;
    }

    /// <summary>Name of the task, shown in the dashboard and logs (Ray's <c>name</c>).</summary>
    public TaskCaller<TResult> SetName(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        _options.Set("name", name);
        return this;
    }

    /// <summary>
    /// A runtime env for this task only, merged with the job's as Ray merges them (its keys replace
    /// the job's, env_vars are merged). Local <c>working_dir</c>/<c>py_modules</c> directories are
    /// packaged and uploaded before the task is sent (Ray's Python client only allows URIs here).
    /// </summary>
    /// <exception cref="RayRuntimeEnvException">The env is invalid; nothing is sent.</exception>
    public TaskCaller<TResult> SetRuntimeEnv(RuntimeEnv runtimeEnv)
    {
        ArgumentNullException.ThrowIfNull(runtimeEnv);
        _options.RuntimeEnv = runtimeEnv.Validate();
        return this;
    }

    /// <summary>Any other option Ray's <c>.options()</c> accepts, by its Python name (e.g. <c>memory</c>, <c>scheduling_strategy</c>).</summary>
    public TaskCaller<TResult> SetOption(string pythonName, object? value)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(pythonName);
        _options.Set(pythonName, value);
        return this;
    }

    /// <summary>
    /// Submits the call. Returns at once with a reference to the result; the submission is pipelined
    /// on the session's stream, and errors in it (an unknown function, bad options) surface when the
    /// result is read.
    /// </summary>
    public ObjectRef<TResult> Remote() =>
        _session.Submitter.SubmitFunction(_function, _args, _kwargs, _options);
}

/// <summary>Collects Ray option names and values and pickles them as Ray's client does (<c>set_task_options</c>).</summary>
internal sealed class TaskOptionsBuilder
{
    private readonly Dictionary<string, object?> _values = new(StringComparer.Ordinal);
    private Dictionary<string, double>? _resources;

    public RuntimeEnv? RuntimeEnv { get; set; }

    public bool IsEmpty => _values.Count == 0 && _resources is null && RuntimeEnv is null;

    public void Set(string name, object? value) => _values[name] = value;

    public bool TryGet(string name, out object? value) => _values.TryGetValue(name, out value);

    public void SetResource(string name, double quantity)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        NonNegative(quantity, nameof(quantity));
        switch (name)
        {
            case "CPU":
                _values["num_cpus"] = quantity;
                break;
            case "GPU":
                _values["num_gpus"] = quantity;
                break;
            default:
                (_resources ??= new(StringComparer.Ordinal))[name] = quantity;
                break;
        }
    }

    public static double NonNegative(double value, string name) =>
        value >= 0 && double.IsFinite(value) ? value : throw new ArgumentOutOfRangeException(name, value, "Must be a finite number >= 0.");

    /// <summary>The Python dict of options, or null when there are none (the field is then left out).</summary>
    public Dictionary<string, object?>? ToPythonDict()
    {
        if (IsEmpty)
        {
            return null;
        }

        var dict = new Dictionary<string, object?>(_values, StringComparer.Ordinal);
        if (_resources is not null)
        {
            dict["resources"] = new Dictionary<string, object?>(_resources.Select(kv => new KeyValuePair<string, object?>(kv.Key, kv.Value)), StringComparer.Ordinal);
        }

        if (RuntimeEnv is not null)
        {
            dict["runtime_env"] = RuntimeEnv.ToPythonDict();
        }

        return dict;
    }
}
