using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using RayClient.Serialization;
using RayClient.Server.Logs;
using RayClient.Server.RuntimeEnv;
using RayClient.Server.Scheduling;
using RayClient.Server.Storage;
using RayClient.Server.Workers;
using RayClient.Session;

namespace RayClient.Server;

/// <summary>Everything the embedded server knows: objects, KV, client sessions, workers, scheduler.</summary>
internal sealed partial class ServerState : IAsyncDisposable
{
    /// <summary>The Ray release whose client-server conventions this server follows (reported in ConnectionInfo).</summary>
    public const string EmulatedRayVersion = "2.51.0";

    private readonly ConcurrentDictionary<string, ClientSession> _sessions = new(StringComparer.Ordinal);
    private readonly MemoryReclaimer _reclaimer;
    private readonly KvStore _kv;
    private readonly CancellationTokenSource _stopping = new();
    private long _jobCounter;

    public ServerState(LocalRayServerOptions options, string workDirectory, ILogger logger)
    {
        Options = options;
        WorkDirectory = workDirectory;
        Logger = logger;
        var (python, version) = PythonLocator.Resolve(options.PythonExecutable);
        PythonVersion = version;
        _reclaimer = new MemoryReclaimer(options.TimeProvider);
        _kv = new KvStore(_reclaimer);
        Store = new ObjectStore(options.ResolveObjectStoreMemory(), _reclaimer);
        Uploads = new UploadBudget(options.MaxPendingUploadBytes, options.MaxPendingUploadBytesPerSession);
        PythonExecutable = python;
        Environments = new EnvironmentResolver(_kv, workDirectory, python, options);
        Logs = new ClientLogRouter(_sessions.ContainsKey);
        Pool = new WorkerPool(python, Path.Combine(workDirectory, "worker"), Math.Max(2, (int)Math.Ceiling(options.NumCpus) * 2), logger, Logs.OnWorkerOutput, OnWorkerCallbackAsync);
        var resources = new Dictionary<string, double>(StringComparer.Ordinal)
        {
            ["CPU"] = options.NumCpus,
            ["GPU"] = options.NumGpus,
            ["memory"] = 8L * 1024 * 1024 * 1024,
            ["object_store_memory"] = Store.Capacity,
            ["node:127.0.0.1"] = 1,
            ["node:__internal_head__"] = 1,
        };
        foreach (var (name, amount) in options.Resources)
        {
            resources[name] = amount;
        }

        Scheduler = new LocalScheduler(resources, Pool, Store, logger);
        Actors = new RayClient.Server.Actors.ActorManager(this);
        NodeId = RayId.NewUnique(28, ref _jobCounter).Hex;
    }

    public LocalRayServerOptions Options { get; }

    public string WorkDirectory { get; }

    public ILogger Logger { get; }

    public string PythonVersion { get; }

    /// <summary>The interpreter workers (and job entrypoints' <c>python</c>) run.</summary>
    public string PythonExecutable { get; }

    public ObjectStore Store { get; }

    /// <summary>Bytes held by unfinished chunked uploads, with their limits.</summary>
    public UploadBudget Uploads { get; }

    public WorkerPool Pool { get; }

    public LocalScheduler Scheduler { get; }

    public RayClient.Server.Actors.ActorManager Actors { get; }

    public KvStore Kv => _kv;

    /// <summary>Runtime envs to worker environments.</summary>
    public EnvironmentResolver Environments { get; }

    /// <summary>Worker output to the right client's log streams.</summary>
    public ClientLogRouter Logs { get; }

    /// <summary>Returns freed memory to the OS after large frees.</summary>
    public MemoryReclaimer Reclaimer => _reclaimer;

    public string NodeId { get; }

    /// <summary>Cancelled when the server begins to stop: new sessions are refused, open streams end.</summary>
    public CancellationToken Stopping => _stopping.Token;

    /// <summary>The server is stopping: no new sessions.</summary>
    public bool IsStopping => _stopping.IsCancellationRequested;

    /// <summary>Begins a stop: refuses new sessions from now on and ends the streams that wait on <see cref="Stopping"/>.</summary>
    public void BeginStop() => _stopping.Cancel();

    public int ClientCount => _sessions.Count(s => !s.Value.IsClosed);

    public TimeSpan DefaultGrace => Options.ResolveDefaultGrace();

    public bool TryGetSession(string clientId, out ClientSession session) => _sessions.TryGetValue(clientId, out session!) && !session.IsClosed;

    public ClientSession GetOrCreateSession(string clientId)
    {
        return _sessions.GetOrAdd(clientId, id =>
        {
            var job = Interlocked.Increment(ref _jobCounter);
            var jobId = BitConverter.GetBytes((int)job);
            return new ClientSession(id, jobId, Uploads, (int)DefaultGrace.TotalSeconds);
        });
    }

    /// <summary>Ends a client's job now: releases its objects and drops its queued work.</summary>
    public void CloseSession(ClientSession session)
    {
        session.Close(Store);
        _sessions.TryRemove(new KeyValuePair<string, ClientSession>(session.ClientId, session));
        Logs.Forget(session.ClientId);
        Pool.KillWorkersOf(session.ClientId);
        Actors.OnSessionClosed(session);
    }

    /// <summary>Sessions that are still open (tests inspect their held objects).</summary>
    public IReadOnlyCollection<ClientSession> Sessions => _sessions.Values.Where(s => !s.IsClosed).ToList();

    // ------------------------------------------------------------------------------------------
    // Init: job config and runtime env
    // ------------------------------------------------------------------------------------------

    /// <summary>Applies the job config of an InitRequest (spec §7): namespace and runtime env.</summary>
    public async Task InitializeAsync(ClientSession session, ByteString jobConfig, int graceSeconds, CancellationToken cancellationToken)
    {
        // A client may ask for any grace period; the server keeps a dead session for at most its maximum.
        session.SetGraceSeconds((int)Math.Min(Math.Max(0, graceSeconds), Options.MaxReconnectGracePeriod.TotalSeconds));
        var (rayNamespace, runtimeEnv) = JobConfigReader.Read(jobConfig.Memory);
        var env = runtimeEnv ?? new Dictionary<string, object?>();
        var environment = await Environments.ResolveAsync(env, cancellationToken).ConfigureAwait(false);
        session.Initialize(rayNamespace ?? $"anonymous-{Guid.NewGuid():N}", env, PythonValues.ToJsonNode(env)?.ToJsonString() ?? "null", environment);
    }

    /// <summary>
    /// Turns a function call into a task of <paramref name="session"/>'s job: checks that it can
    /// ever be scheduled, resolves its runtime env (merged onto the parent task's or the job's, as
    /// Ray merges them; resolved off the caller's thread), and creates its return objects, held
    /// by the job. The caller submits it to the scheduler once it has told the submitter the ids.
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
            environment = Environments.ResolveAsync(runtimeEnv, CancellationToken.None);
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

    /// <summary>
    /// Submits <c>actor.method.remote(...)</c> for <paramref name="session"/> (from the client or
    /// from Python code in a worker) and returns the call's result objects.
    /// </summary>
    public StoredObject[] SubmitActorCall(ClientSession session, Actors.ActorRecord actor, string method, ReadOnlyMemory<byte> args, int numReturns)
    {
        var held = RefScanner.FindHeld(session, args, out var topLevel);
        var returns = CreateReturns(session, numReturns);
        Actors.Submit(actor, new Actors.ActorCall { Client = session, Method = method, Args = args, Returns = returns, Dependencies = topLevel, Held = held });
        return returns;
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
            returns[i] = Store.Create();
            session.Hold(returns[i]);
            returns[i].AddReference();
        }

        return returns;
    }

    /// <summary>Ray's object id size; ray_worker.py splits a callback answer's ids by it.</summary>
    private const int ObjectIdLength = 28;

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

    /// <summary>
    /// User code in a worker calling back: <c>actor.method.remote()</c> submits a call for the
    /// worker's client (who then holds the results), <c>ray.get(ref)</c> waits for an object.
    /// </summary>
    private async Task OnWorkerCallbackAsync(WorkerProcess worker, byte kind, ulong seq, IReadOnlyList<byte[]> blobs)
    {
        try
        {
            if (worker.LastClientId is not { } clientId || !TryGetSession(clientId, out var session))
            {
                await worker.RespondAsync(seq, false, ServerErrors.ValueError("The job of this worker has ended.")).ConfigureAwait(false);
                return;
            }

            if (kind == WorkerProcess.KindGet)
            {
                if (!session.TryGetObject(new RayId(blobs[0]), out var entry))
                {
                    await worker.RespondAsync(seq, false, ServerErrors.ValueError($"ObjectRef {Convert.ToHexStringLower(blobs[0])} is not found for client {clientId}.")).ConfigureAwait(false);
                    return;
                }

                entry.AddReference();
                var blocked = entry.IsReady ? null : worker.CurrentTask;
                if (blocked is not null)
                {
                    Scheduler.LendResources(blocked); // a task waiting on its children must not starve them
                }

                entry.OnReady(() =>
                {
                    if (blocked is not null)
                    {
                        Scheduler.ReclaimResources(blocked);
                    }

                    _ = worker.RespondAsync(seq, !entry.IsError, entry.Data).ContinueWith(_ => Store.Release(entry), TaskScheduler.Default);
                });
                return;
            }

            if (kind == WorkerProcess.KindSubmitTask)
            {
                // f.remote() in a task: key, function pickle, pickled (args, kwargs), pickled options.
                var spec = PrepareTask(
                    session,
                    System.Text.Encoding.UTF8.GetString(blobs[0]),
                    "py:" + System.Text.Encoding.UTF8.GetString(blobs[0]),
                    blobs[1],
                    blobs[2],
                    TaskOptionsReader.Read(Google.Protobuf.UnsafeByteOperations.UnsafeWrap(blobs[3])),
                    parent: worker.CurrentTask);
                try
                {
                    await worker.RespondAsync(seq, true, ConcatenateIds(spec.Returns)).ConfigureAwait(false);
                }
                finally
                {
                    Scheduler.Submit(spec); // accepted: runs (and releases what it holds) even if the parent died meanwhile
                }

                return;
            }

            // KindSubmitMethod: actor id, method name, pickled (args, kwargs), num_returns
            if (!Actors.TryGet(new RayId(blobs[0]), out var actor))
            {
                await worker.RespondAsync(seq, false, ServerErrors.ValueError($"Can't run an actor the server doesn't have a handle for ({Convert.ToHexStringLower(blobs[0])}).")).ConfigureAwait(false);
                return;
            }

            var numReturns = int.Parse(System.Text.Encoding.ASCII.GetString(blobs[3]), System.Globalization.CultureInfo.InvariantCulture);
            var returns = SubmitActorCall(session, actor, System.Text.Encoding.UTF8.GetString(blobs[1]), blobs[2], numReturns);
            await worker.RespondAsync(seq, true, ConcatenateIds(returns)).ConfigureAwait(false);
        }
        catch (TicketException ex)
        {
            await worker.RespondAsync(seq, false, ex.ErrorPickle).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or WorkerCrashedException)
        {
            // The worker went away; nobody waits for the answer.
        }
    }

    public async ValueTask DisposeAsync()
    {
        BeginStop();
        foreach (var session in _sessions.Values)
        {
            session.CancelPendingCleanup();
            session.Close(Store);
        }

        _sessions.Clear();
        await DisposeDriverLinkAsync().ConfigureAwait(false);
        await Pool.DisposeAsync().ConfigureAwait(false);
        _reclaimer.Dispose();
    }
}
