using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using RayClient.Serialization;
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
    private readonly RayClient.Server.RuntimeEnv.PackageCache _packages;
    private readonly RayClient.Server.RuntimeEnv.VirtualEnvCache _venvs;
    private readonly ConcurrentDictionary<string, ClientLog> _logs = new(StringComparer.Ordinal);
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
        _packages = new RayClient.Server.RuntimeEnv.PackageCache(Path.Combine(workDirectory, "packages"), options.MaxPackageUnpackedSize, options.MaxPackageFiles);
        PythonExecutable = python;
        _venvs = new RayClient.Server.RuntimeEnv.VirtualEnvCache(Path.Combine(workDirectory, "venvs"), python);
        Pool = new WorkerPool(python, Path.Combine(workDirectory, "worker"), Math.Max(2, (int)Math.Ceiling(options.NumCpus) * 2), logger, OnWorkerOutput, OnWorkerCallbackAsync);
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
        _logs.TryRemove(session.ClientId, out _);
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
        var environment = await ResolveEnvironmentAsync(env, cancellationToken).ConfigureAwait(false);
        session.Initialize(rayNamespace ?? $"anonymous-{Guid.NewGuid():N}", env, ToJsonNode(env)?.ToJsonString() ?? "null", environment);
    }

    /// <summary>Turns a runtime env dict (URIs only) into a worker environment, unpacking packages once.</summary>
    public async Task<WorkerEnvironment> ResolveEnvironmentAsync(IReadOnlyDictionary<string, object?> runtimeEnv, CancellationToken cancellationToken)
    {
        if (runtimeEnv.Count == 0)
        {
            return WorkerEnvironment.Default;
        }

        string? workingDir = null;
        if (runtimeEnv.TryGetValue("working_dir", out var wd) && wd is string uri)
        {
            workingDir = await _packages.GetWorkingDirAsync(uri, FetchPackageAsync, cancellationToken).ConfigureAwait(false);
        }

        var sysPath = new List<string>();
        if (runtimeEnv.TryGetValue("py_modules", out var modules) && modules is System.Collections.IEnumerable list)
        {
            foreach (var module in list)
            {
                if (module is string moduleUri)
                {
                    sysPath.Add(await _packages.GetPyModuleSysPathAsync(moduleUri, FetchPackageAsync, cancellationToken).ConfigureAwait(false));
                }
            }
        }

        var envVars = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (runtimeEnv.TryGetValue("env_vars", out var vars) && vars is System.Collections.IDictionary dict)
        {
            foreach (System.Collections.DictionaryEntry entry in dict)
            {
                envVars[Convert.ToString(entry.Key, System.Globalization.CultureInfo.InvariantCulture)!] =
                    Convert.ToString(entry.Value, System.Globalization.CultureInfo.InvariantCulture) ?? string.Empty;
            }
        }

        string? python = null;
        if (runtimeEnv.TryGetValue("pip", out var pip) && PipSpec(pip) is { Packages.Count: > 0 } spec)
        {
            var timeout = TimeSpan.FromSeconds(600);
            if (runtimeEnv.TryGetValue("config", out var config) && config is System.Collections.IDictionary cfg
                && cfg.Contains("setup_timeout_seconds") && cfg["setup_timeout_seconds"] is int seconds and > 0)
            {
                timeout = TimeSpan.FromSeconds(seconds);
            }

            python = await _venvs.GetPythonAsync(spec.Packages, spec.Check, timeout).ConfigureAwait(false);
        }

        var key = new JsonObject
        {
            ["workingDir"] = workingDir,
            ["sysPath"] = ToJsonNode(sysPath),
            ["envVars"] = ToJsonNode(envVars),
            ["python"] = python,
        }.ToJsonString();
        return new WorkerEnvironment(key, workingDir, sysPath, envVars, python);
    }

    /// <summary>Ray's pip field: a list of requirements, or {packages, pip_check, pip_version}.</summary>
    private static (List<string> Packages, bool Check)? PipSpec(object? pip)
    {
        static List<string> Strings(object? value) =>
            value is System.Collections.IEnumerable items and not string ? items.OfType<string>().ToList() : [];

        return pip switch
        {
            System.Collections.IDictionary dict => (Strings(dict.Contains("packages") ? dict["packages"] : null), dict.Contains("pip_check") && dict["pip_check"] is true),
            System.Collections.IEnumerable and not string => (Strings(pip), false),
            _ => null,
        };
    }

    /// <summary>Packages live in the KV store under their URI, default namespace (spec §8.6).</summary>
    private Task<byte[]?> FetchPackageAsync(string uri, CancellationToken cancellationToken) =>
        Task.FromResult(_kv.Get(System.Text.Encoding.UTF8.GetBytes(uri), null));

    /// <summary>
    /// A pickled Python value as JSON, built as a JsonNode so the server needs no reflection-based
    /// serialization (file-based apps and trimmed apps turn it off).
    /// </summary>
    internal static JsonNode? ToJsonNode(object? value) => value switch
    {
        null => null,
        string text => JsonValue.Create(text),
        bool flag => JsonValue.Create(flag),
        int number => JsonValue.Create(number),
        long number => JsonValue.Create(number),
        double number => JsonValue.Create(number),
        System.Numerics.BigInteger big => JsonValue.Create((double)big),
        byte[] bytes => JsonValue.Create(Convert.ToBase64String(bytes)),
        System.Collections.IDictionary dict => new JsonObject(Entries(dict).Select(e =>
            KeyValuePair.Create(Convert.ToString(e.Key, System.Globalization.CultureInfo.InvariantCulture)!, ToJsonNode(e.Value)))),
        System.Collections.IEnumerable items => new JsonArray([.. items.Cast<object?>().Select(ToJsonNode)]),
        _ => JsonValue.Create(Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture)),
    };

    /// <summary>A dictionary's entries (Cast&lt;DictionaryEntry&gt; fails on generic dictionaries, which enumerate KeyValuePairs).</summary>
    internal static IEnumerable<System.Collections.DictionaryEntry> Entries(System.Collections.IDictionary dict)
    {
        var enumerator = dict.GetEnumerator();
        while (enumerator.MoveNext())
        {
            yield return enumerator.Entry;
        }
    }

    // ------------------------------------------------------------------------------------------
    // Logs
    // ------------------------------------------------------------------------------------------
    /// <summary>
    /// Delivers what a client's tasks print. Lines printed while no log stream is attached (before
    /// it opens, during a reconnect) are kept, up to a bound, and delivered when one attaches; Ray
    /// drops them (spec §12.10).
    /// </summary>
    public IDisposable SubscribeLogs(string clientId, Action<string, int> sink)
    {
        var log = _logs.GetOrAdd(clientId, _ => new ClientLog());
        List<(string, int)> backlog;
        lock (log)
        {
            log.Sinks.Add(sink);
            backlog = [.. log.Backlog];
            log.Backlog.Clear();
        }

        foreach (var (text, level) in backlog)
        {
            sink(text, level);
        }

        return new Unsubscriber(() =>
        {
            lock (log)
            {
                log.Sinks.Remove(sink);
            }
        });
    }

    /// <summary>A line a worker printed: <paramref name="level"/> is Ray's -1 (stdout) or -2 (stderr).</summary>
    private void OnWorkerOutput(WorkerProcess worker, string line, int level)
    {
        // The line may arrive after the task's result: attribute it to the worker's last client.
        var clientId = worker.LastClientId;
        if (clientId is null || !_sessions.ContainsKey(clientId))
        {
            return;
        }

        var log = _logs.GetOrAdd(clientId, _ => new ClientLog());
        var text = $"({worker.CurrentTaskName ?? "worker"} pid={worker.Pid}) {line}\n";
        Action<string, int>[] sinks;
        lock (log)
        {
            if (log.Sinks.Count == 0)
            {
                if (log.Backlog.Count >= 10_000)
                {
                    log.Backlog.Dequeue();
                }

                log.Backlog.Enqueue((text, level));
                return;
            }

            sinks = [.. log.Sinks];
        }

        foreach (var sink in sinks)
        {
            sink(text, level);
        }
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
            environment = ResolveEnvironmentAsync(runtimeEnv, CancellationToken.None);
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

    private sealed class ClientLog
    {
        public List<Action<string, int>> Sinks { get; } = [];

        public Queue<(string Text, int Level)> Backlog { get; } = new();
    }

    private sealed class Unsubscriber(Action dispose) : IDisposable
    {
        public void Dispose() => dispose();
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
