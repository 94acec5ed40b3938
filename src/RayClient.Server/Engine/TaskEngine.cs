using Microsoft.Extensions.Logging;
using RayClient.Server.Actors;
using RayClient.Server.Logs;
using RayClient.Server.RuntimeEnv;
using RayClient.Server.Scheduling;
using RayClient.Server.Storage;
using RayClient.Server.Workers;

namespace RayClient.Server.Engine;

/// <summary>
/// The one owner of tasks, actors and their workers. The protocol front ends (the Datapath, the
/// unary RPCs, the job-driver link) and the workers' own callbacks all come here: a task is
/// prepared (options, arguments, runtime env) and submitted to the scheduler, an actor is created
/// and its methods are called, ray.cancel and ray.kill reach their target. The front ends only
/// translate their messages into these calls, as grpc's ServerCallHandler calls the service.
/// </summary>
internal sealed partial class TaskEngine : IAsyncDisposable
{
    /// <summary>Ray's object id size; ray_worker.py splits a callback answer's ids by it.</summary>
    private const int ObjectIdLength = 28;

    private readonly ObjectStore _store;
    private readonly EnvironmentResolver _environments;
    private readonly Func<string, ClientSession?> _findSession;

    /// <param name="resources">What the node has (CPU, GPU, memory, custom resources).</param>
    /// <param name="python">The interpreter workers run unless a runtime env brings its own.</param>
    /// <param name="workerDirectory">Where the worker script is written.</param>
    /// <param name="maxIdleWorkers">How many idle workers the pool keeps warm.</param>
    /// <param name="store">The object store results go to.</param>
    /// <param name="environments">Resolves task and actor runtime envs.</param>
    /// <param name="logs">Where workers' output goes.</param>
    /// <param name="findSession">The open session of a client id, or null (for workers' callbacks).</param>
    /// <param name="logger">The server's logger.</param>
    public TaskEngine(
        IReadOnlyDictionary<string, double> resources,
        string python,
        string workerDirectory,
        int maxIdleWorkers,
        ObjectStore store,
        EnvironmentResolver environments,
        ClientLogRouter logs,
        Func<string, ClientSession?> findSession,
        ILogger logger)
    {
        _store = store;
        _environments = environments;
        _findSession = findSession;
        Pool = new WorkerPool(python, workerDirectory, maxIdleWorkers, logger, logs.OnWorkerOutput, OnWorkerCallbackAsync);
        Scheduler = new LocalScheduler(resources, Pool, store, logger);
        Actors = new ActorManager(Scheduler, Pool, store, logger);
    }

    public WorkerPool Pool { get; }

    public LocalScheduler Scheduler { get; }

    public ActorManager Actors { get; }

    /// <summary>
    /// Turns a function call into a task of <paramref name="session"/>'s job: checks that it can
    /// ever be scheduled, resolves its runtime env (merged onto the parent task's or the job's, as
    /// Ray merges them; resolved off the caller's thread), and creates its return objects, held
    /// by the job. The caller hands it to <see cref="Submit"/> once it has told the submitter the ids.
    /// </summary>
    public TaskSpec PrepareTask(ClientSession session, string name, string functionKey, ReadOnlyMemory<byte> functionPickle, ReadOnlyMemory<byte> args, TaskOptionsReader options, TaskSpec? parent)
    {
        var demand = options.Resources(defaultCpus: 1);
        if (Scheduler.CheckFeasible(demand) is { } infeasible)
        {
            throw new TicketException(ServerErrors.Pickle("builtins", "ValueError", $"Cannot schedule {name}: {infeasible}"));
        }

        var held = RefScanner.FindHeld(session, args, out var topLevel);
        var baseEnv = parent?.RuntimeEnv ?? session.RuntimeEnv;
        var runtimeEnv = baseEnv;
        var environment = parent?.Environment ?? Task.FromResult(session.Environment);
        if (options.RuntimeEnv is { Count: > 0 } taskEnv)
        {
            runtimeEnv = RuntimeEnvMerge.Merge(baseEnv, taskEnv);
            environment = _environments.ResolveAsync(runtimeEnv, CancellationToken.None);
        }

        var returns = CreateReturns(session, options.NumReturns);
        var spec = new TaskSpec
        {
            Client = session,
            Name = string.IsNullOrEmpty(options.Name) ? name : options.Name,
            FunctionKey = functionKey,
            FunctionPickle = functionPickle,
            Args = args,
            Returns = returns,
            Dependencies = topLevel,
            Held = held,
            Resources = demand,
            MaxRetries = options.MaxRetries ?? 3,
            Environment = environment,
            RuntimeEnv = runtimeEnv,
            Parent = parent,
        };
        if (parent is not null)
        {
            LocalScheduler.AddChild(parent, spec);
        }

        return spec;
    }

    /// <summary>Submits a prepared task: it runs (and releases what it holds) even if its submitter went away meanwhile.</summary>
    public void Submit(TaskSpec task) => Scheduler.Submit(task);

    /// <summary>
    /// Ray's <c>ray.cancel(ref, force, recursive)</c> for the task whose result <paramref name="output"/>
    /// names, if <paramref name="session"/> holds it. False when it does not: the Datapath ignores
    /// that (Ray's error is lost in the stream's status), the unary Terminate reports it.
    /// </summary>
    public bool Cancel(ClientSession session, RayId output, bool force, bool recursive)
    {
        if (!session.TryGetObject(output, out var entry))
        {
            return false;
        }

        Scheduler.Cancel(entry, force, recursive);
        return true;
    }

    /// <summary>
    /// A client dropped a reference (ReleaseRequest): an object it holds, or its handle to an actor.
    /// False when it held neither.
    /// </summary>
    public bool Release(ClientSession session, RayId id) => session.Release(id, _store) || Actors.Release(session, id);

    /// <summary>A job ended: the workers running its tasks are stopped and its non-detached actors die.</summary>
    public void OnSessionClosed(ClientSession session)
    {
        Pool.KillWorkersOf(session.ClientId);
        Actors.OnSessionClosed(session);
    }

    /// <summary>
    /// The result objects of a task or actor call: held by the job, plus one reference of the
    /// work's own that it drops when it finishes.
    /// </summary>
    private StoredObject[] CreateReturns(ClientSession session, int count)
    {
        var returns = new StoredObject[count];
        for (var i = 0; i < count; i++)
        {
            returns[i] = _store.Create();
            session.Hold(returns[i]);
            returns[i].AddReference();
        }

        return returns;
    }

    /// <summary>The ids of <paramref name="objects"/> back to back, as a worker's callback answer carries them.</summary>
    internal static byte[] ConcatenateIds(StoredObject[] objects)
    {
        var ids = new byte[ObjectIdLength * objects.Length];
        for (var i = 0; i < objects.Length; i++)
        {
            objects[i].Id.Bytes.CopyTo(ids, ObjectIdLength * i);
        }

        return ids;
    }

    public ValueTask DisposeAsync() => Pool.DisposeAsync();
}
