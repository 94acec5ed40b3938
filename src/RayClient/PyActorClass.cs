using System.Text.Json;
using RayClient.Serialization;
using RayClient.Session;

namespace RayClient;

/// <summary>
/// A Python class on the cluster used as an actor, referenced by module and name (Ray Java's
/// <c>PyActorClass.of</c>). The module must be importable there (installed, or in the job's
/// working_dir/py_modules).
/// </summary>
public sealed class PyActorClass
{
    private PyActorClass(string moduleName, string className)
    {
        ModuleName = moduleName;
        ClassName = className;
    }

    /// <summary>Python module, e.g. <c>mypkg.actors</c>.</summary>
    public string ModuleName { get; }

    /// <summary>Class name in the module (dotted for nested classes).</summary>
    public string ClassName { get; }

    /// <summary>References <paramref name="moduleName"/>.<paramref name="className"/>.</summary>
    public static PyActorClass Of(string moduleName, string className)
    {
        PyNames.Validate(moduleName, className);
        return new PyActorClass(moduleName, className);
    }

    /// <inheritdoc />
    public override string ToString() => $"{ModuleName}.{ClassName}";
}

/// <summary>A method of a Python actor class, with the .NET type its result is read as (Ray Java's <c>PyActorMethod</c>).</summary>
/// <typeparam name="TResult">The result type.</typeparam>
public sealed class PyActorMethod<TResult>
{
    private PyActorMethod(string name) => Name = name;

    /// <summary>The method's Python name.</summary>
    public string Name { get; }

    /// <summary>References method <paramref name="name"/>.</summary>
    public static PyActorMethod<TResult> Of(string name)
    {
        PyNames.Validate("actor", name);
        return new PyActorMethod<TResult>(name);
    }
}

/// <summary>Factory for <see cref="PyActorMethod{TResult}"/>.</summary>
public static class PyActorMethod
{
    /// <summary>A method whose result is read untyped.</summary>
    public static PyActorMethod<object?> Of(string name) => PyActorMethod<object?>.Of(name);

    /// <summary>A method whose result is read as <typeparamref name="TResult"/>.</summary>
    public static PyActorMethod<TResult> Of<TResult>(string name) => PyActorMethod<TResult>.Of(name);
}

/// <summary>
/// A handle to a Python actor (Ray's <c>ActorHandle</c>). Method calls return object refs at once
/// and run on the actor in the order they were made. A handle can be passed to tasks and other
/// actors as an argument.
/// </summary>
public sealed class PyActorHandle : IPickleStubSource, IAsyncDisposable
{
    private int _disposed;

    internal PyActorHandle(RaySession session, Task<RayId> id, string className, string? name = null, string? rayNamespace = null)
    {
        Session = session;
        IdTask = id;
        ClassName = className;
        Name = name;
        // A namespace only scopes a name (Ray's named actors); an unnamed actor reports none.
        Namespace = name is null ? null : rayNamespace ?? session.Namespace;
    }

    /// <summary>The session the handle belongs to.</summary>
    public RaySession Session { get; }

    /// <summary>
    /// The actor's class name. The client is not told the class of an actor it did not create:
    /// for a handle from <see cref="RaySession.GetActorAsync"/> this is the name asked for, and
    /// for a handle that came back from Python it is <c>actor</c>.
    /// </summary>
    public string ClassName { get; }

    /// <summary>
    /// The actor's name, or null for an unnamed actor. Set when the actor is created with a name
    /// (<see cref="ActorCreator.SetName"/>, or the <c>name</c> option) and for a handle from
    /// <see cref="RaySession.GetActorAsync"/>, where it is the name asked for: Ray's named-actor
    /// lookup answers with the actor id only, as its client keeps no name on the handle
    /// (ray: python/ray/util/client/common.py, <c>ClientActorHandle</c>). A handle that came back
    /// from Python (returned by a task or method, or inside a value) carries no name: null, even
    /// when the actor has one.
    /// </summary>
    public string? Name { get; }

    /// <summary>
    /// The namespace of the actor's <see cref="Name"/>: the one given at creation
    /// (<see cref="ActorCreator.SetNamespace"/>) or lookup, else the session's
    /// (<see cref="RaySession.Namespace"/>). Null when <see cref="Name"/> is null, and for a name in
    /// the session's anonymous namespace (the client is not told its generated name).
    /// </summary>
    public string? Namespace { get; }

    internal Task<RayId> IdTask { get; }

    /// <summary>The actor id in hex (16 bytes); waits until the server assigned it.</summary>
    /// <exception cref="RayException">The actor could not be created or found.</exception>
    public async Task<string> GetIdAsync(CancellationToken cancellationToken = default) =>
        (await IdTask.WaitAsync(cancellationToken).ConfigureAwait(false)).Hex;

    /// <summary>Prepares a call of <paramref name="method"/>; finish with <c>Remote()</c>.</summary>
    public ActorTaskCaller<TResult> Task<TResult>(PyActorMethod<TResult> method, params object?[] args)
    {
        ArgumentNullException.ThrowIfNull(method);
        return new ActorTaskCaller<TResult>(this, method, args ?? [null]);
    }

    /// <summary>Calls <paramref name="method"/> with default options.</summary>
    public ObjectRef<TResult> Call<TResult>(PyActorMethod<TResult> method, params object?[] args) => Task(method, args).Remote();

    PickleStub IPickleStubSource.ToPickleStub() => new("Actor", Session.ClientId, IdTask.Result.Bytes, null, null);

    /// <summary>
    /// Releases this session's hold on the actor. An unnamed, non-detached actor that no session
    /// holds any more ends (as in Ray when its last handle goes away). Idempotent.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0 || !IdTask.IsCompletedSuccessfully)
        {
            return;
        }

        await Session.ReleaseAsync(IdTask.Result).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>Actor(Class, id)</c>, with <c>pending</c> for an id not assigned yet; a named actor adds
    /// <c>name=…</c> and, when known, <c>namespace=…</c>.
    /// </summary>
    public override string ToString()
    {
        var id = IdTask.IsCompletedSuccessfully ? IdTask.Result.Hex : "pending";
        if (Name is null)
        {
            return $"Actor({ClassName}, {id})";
        }

        return Namespace is null ? $"Actor({ClassName}, {id}, name={Name})" : $"Actor({ClassName}, {id}, name={Name}, namespace={Namespace})";
    }
}

/// <summary>Per-call options of an actor method call, ending in <see cref="Remote"/>.</summary>
/// <typeparam name="TResult">The result type.</typeparam>
public sealed class ActorTaskCaller<TResult>
{
    private readonly PyActorHandle _actor;
    private readonly PyActorMethod<TResult> _method;
    private readonly object?[] _args;
    private readonly TaskOptionsBuilder _options = new();
    private Dictionary<string, object?>? _kwargs;

    internal ActorTaskCaller(PyActorHandle actor, PyActorMethod<TResult> method, object?[] args)
    {
        _actor = actor;
        _method = method;
        _args = args;
    }

    /// <summary>A keyword argument of the Python call.</summary>
    public ActorTaskCaller<TResult> SetKeywordArgument(string name, object? value)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        (_kwargs ??= [])[name] = value;
        return this;
    }

    /// <summary>Any option Ray's method <c>.options()</c> accepts, by its Python name.</summary>
    public ActorTaskCaller<TResult> SetOption(string pythonName, object? value)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(pythonName);
        _options.Set(pythonName, value);
        return this;
    }

    /// <summary>Submits the call; the result ref is returned at once.</summary>
    public ObjectRef<TResult> Remote()
    {
        var session = _actor.Session;
        var id = session.Submitter.SubmitActorMethod(_actor.IdTask, _method.Name, _args, _kwargs, _options, $"Calling {_actor.ClassName}.{_method.Name}");
        return session.TrackedRef<TResult>(id);
    }
}

/// <summary>Options of an actor creation, ending in <see cref="Remote"/> (Ray Java's <c>ActorCreator</c>).</summary>
public sealed class ActorCreator
{
    private readonly RaySession _session;
    private readonly PyActorClass _class;
    private readonly object?[] _args;
    private readonly TaskOptionsBuilder _options = new();

    internal ActorCreator(RaySession session, PyActorClass actorClass, object?[] args)
    {
        _session = session;
        _class = actorClass;
        _args = args;
    }

    /// <summary>Name of the actor, unique in its namespace; others find it with <see cref="RaySession.GetActorAsync"/>.</summary>
    public ActorCreator SetName(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        _options.Set("name", name);
        return this;
    }

    /// <summary>Namespace of the actor's name (default: the job's).</summary>
    public ActorCreator SetNamespace(string rayNamespace)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(rayNamespace);
        _options.Set("namespace", rayNamespace);
        return this;
    }

    /// <summary>A detached actor outlives the session that created it (until killed).</summary>
    public ActorCreator SetDetached(bool detached = true)
    {
        _options.Set("lifetime", detached ? "detached" : null);
        return this;
    }

    /// <summary>How often a crashed actor process is restarted (its state is lost); -1 = forever. Ray's default: 0.</summary>
    public ActorCreator SetMaxRestarts(int maxRestarts)
    {
        _options.Set("max_restarts", maxRestarts >= -1 ? maxRestarts : throw new ArgumentOutOfRangeException(nameof(maxRestarts)));
        return this;
    }

    /// <summary>How often a method call is retried after the actor restarted; -1 = forever.</summary>
    public ActorCreator SetMaxTaskRetries(int maxTaskRetries)
    {
        _options.Set("max_task_retries", maxTaskRetries >= -1 ? maxTaskRetries : throw new ArgumentOutOfRangeException(nameof(maxTaskRetries)));
        return this;
    }

    /// <summary>How many methods may run at once (threads); default 1: one at a time, in order.</summary>
    public ActorCreator SetMaxConcurrency(int maxConcurrency)
    {
        _options.Set("max_concurrency", maxConcurrency >= 1 ? maxConcurrency : throw new ArgumentOutOfRangeException(nameof(maxConcurrency)));
        return this;
    }

    /// <summary>Return the existing actor of this name instead of failing when the name is taken.</summary>
    public ActorCreator SetGetIfExists(bool getIfExists = true)
    {
        _options.Set("get_if_exists", getIfExists);
        return this;
    }

    /// <summary>CPUs the actor holds for its lifetime (Ray's <c>num_cpus</c>).</summary>
    public ActorCreator SetNumCpus(double cpus)
    {
        _options.Set("num_cpus", TaskOptionsBuilder.NonNegative(cpus, nameof(cpus)));
        return this;
    }

    /// <summary>GPUs the actor holds.</summary>
    public ActorCreator SetNumGpus(double gpus)
    {
        _options.Set("num_gpus", TaskOptionsBuilder.NonNegative(gpus, nameof(gpus)));
        return this;
    }

    /// <summary>A resource the actor holds.</summary>
    public ActorCreator SetResource(string name, double quantity)
    {
        _options.SetResource(name, quantity);
        return this;
    }

    /// <summary>A runtime env for the actor, merged with the job's.</summary>
    public ActorCreator SetRuntimeEnv(RuntimeEnv runtimeEnv)
    {
        ArgumentNullException.ThrowIfNull(runtimeEnv);
        _options.RuntimeEnv = runtimeEnv.Validate();
        return this;
    }

    /// <summary>Any other option of Ray's actor <c>.options()</c>, by its Python name.</summary>
    public ActorCreator SetOption(string pythonName, object? value)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(pythonName);
        _options.Set(pythonName, value);
        return this;
    }

    /// <summary>Creates the actor; the handle is returned at once and calls on it queue behind the creation.</summary>
    public PyActorHandle Remote()
    {
        var name = _class.ClassName[(_class.ClassName.LastIndexOf('.') + 1)..];
        var id = _session.Submitter.SubmitActorCreation(_class.ModuleName, _class.ClassName, name, _args, _options, $"Creating actor {_class}");
        // The name and namespace as sent, whichever setter (or SetOption) put them there.
        return new PyActorHandle(_session, id, name, OptionText("name"), OptionText("namespace"));
    }

    private string? OptionText(string pythonName) =>
        _options.TryGet(pythonName, out var value) && value is string { Length: > 0 } text ? text : null;
}

/// <summary>A named actor as <see cref="RaySession.ListNamedActorsAsync"/> reports it.</summary>
/// <param name="Name">The actor's name.</param>
/// <param name="Namespace">Its namespace (null when only the job's namespace was listed).</param>
public sealed record NamedActorInfo(string Name, string? Namespace);
