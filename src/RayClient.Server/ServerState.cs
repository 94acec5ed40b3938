using System.Collections.Concurrent;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using RayClient.Server.Engine;
using RayClient.Server.Logs;
using RayClient.Server.RuntimeEnv;
using RayClient.Server.Storage;
using RayClient.Server.Workers;

namespace RayClient.Server;

/// <summary>
/// Wires the embedded server: storage (objects, KV, upload budget), environments, log routing and
/// the <see cref="TaskEngine"/>, and keeps the client sessions (ServerState.Sessions.cs) and the
/// job-driver link (ServerState.Jobs.cs). The protocol services translate messages into calls on these.
/// </summary>
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

        Engine = new TaskEngine(
            resources,
            python,
            Path.Combine(workDirectory, "worker"),
            maxIdleWorkers: Math.Max(2, (int)Math.Ceiling(options.NumCpus) * 2),
            Store,
            Environments,
            Logs,
            clientId => TryGetSession(clientId, out var session) ? session : null,
            logger);
        NodeId = RayId.NewUnique(28, ref _jobCounter).Hex;
        if (options.PrestartWorkers > 0)
        {
            // In the background: failures are logged by the pool, and tasks start their own workers.
            _ = Engine.Pool.PrestartAsync(WorkerEnvironment.Default, options.PrestartWorkers, CancellationToken.None);
        }
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

    /// <summary>Tasks, actors and their workers.</summary>
    public TaskEngine Engine { get; }

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
        await Engine.DisposeAsync().ConfigureAwait(false);
        _reclaimer.Dispose();
    }
}
