using Microsoft.Extensions.Logging;
using RayClient.Server.Python;

namespace RayClient.Server.Workers;

/// <summary>
/// Python worker processes, pooled per runtime environment. The scheduler bounds how many run
/// tasks at once (one per CPU in use); the pool keeps idle ones warm and retires surplus idle
/// workers of other environments.
/// </summary>
internal sealed partial class WorkerPool : IAsyncDisposable
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Stack<WorkerProcess>> _idle = new(StringComparer.Ordinal);
    private readonly HashSet<WorkerProcess> _all = [];
    private readonly HashSet<WorkerProcess> _dedicated = [];
    private readonly Action<WorkerProcess, string, int> _onOutput;
    private readonly Func<WorkerProcess, byte, ulong, IReadOnlyList<byte[]>, Task>? _onCallback;
    private readonly int _maxIdle;
    private readonly string _script;
    private readonly ILogger _logger;
    private bool _disposed;

    public WorkerPool(string python, string workDirectory, int maxIdle, ILogger logger, Action<WorkerProcess, string, int> onOutput, Func<WorkerProcess, byte, ulong, IReadOnlyList<byte[]>, Task>? onCallback = null)
    {
        Python = python;
        _logger = logger;
        _onCallback = onCallback;
        _maxIdle = Math.Max(1, maxIdle);
        _onOutput = onOutput;
        _script = ExtractScript(workDirectory);
    }

    public string Python { get; }

    /// <summary>Worker processes started since the pool was created (a measure of process churn).</summary>
    public int Started { get; private set; }

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _all.Count;
            }
        }
    }

    /// <summary>Live workers, for tests that kill one.</summary>
    public IReadOnlyList<WorkerProcess> Snapshot()
    {
        lock (_lock)
        {
            return [.. _all];
        }
    }

    /// <summary>Kills the workers running tasks of a job that ended (Ray ends a job's work with the job).</summary>
    public int KillWorkersOf(string clientId)
    {
        List<WorkerProcess> victims;
        lock (_lock)
        {
            victims = _all.Where(w => w.CurrentClientId == clientId && !_dedicated.Contains(w)).ToList();
        }

        foreach (var victim in victims)
        {
            victim.Kill();
        }

        return victims.Count;
    }

    /// <summary>
    /// An idle worker of <paramref name="environment"/>, or a new one, marked as running work of
    /// <paramref name="clientId"/> under the lock <see cref="KillWorkersOf"/> reads under, so a
    /// job's end never misses it.
    /// </summary>
    public async Task<WorkerProcess> AcquireAsync(WorkerEnvironment environment, string clientId, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_idle.TryGetValue(environment.Key, out var stack))
            {
                while (stack.TryPop(out var idle))
                {
                    if (idle.IsAlive)
                    {
                        idle.AssignTo(clientId);
                        return idle;
                    }

                    _all.Remove(idle);
                }
            }
        }

        var worker = await WorkerProcess.StartAsync(environment.PythonExecutable ?? Python, _script, environment, _onOutput, _logger, clientId, cancellationToken, _onCallback).ConfigureAwait(false);
        lock (_lock)
        {
            if (_disposed)
            {
                _ = worker.DisposeAsync().AsTask();
                throw new ObjectDisposedException(nameof(WorkerPool));
            }

            _all.Add(worker);
            Started++;
            worker.AssignTo(clientId);
        }

        return worker;
    }

    /// <summary>
    /// Starts up to <paramref name="count"/> idle workers of <paramref name="environment"/> in the
    /// background (never more than the pool keeps idle). A worker that fails to start is logged and
    /// skipped: tasks then start their own, as without prestarting.
    /// </summary>
    public Task PrestartAsync(WorkerEnvironment environment, int count, CancellationToken cancellationToken)
    {
        var starts = Enumerable.Range(0, Math.Min(count, _maxIdle)).Select(_ => Task.Run(
            async () =>
            {
                try
                {
                    var worker = await WorkerProcess.StartAsync(environment.PythonExecutable ?? Python, _script, environment, _onOutput, _logger, clientId: null, cancellationToken, _onCallback).ConfigureAwait(false);
                    lock (_lock)
                    {
                        if (!_disposed)
                        {
                            _all.Add(worker);
                            Started++;
                            worker.Unassign();
                            if (!_idle.TryGetValue(environment.Key, out var stack))
                            {
                                _idle[environment.Key] = stack = new Stack<WorkerProcess>();
                            }

                            stack.Push(worker);
                            return;
                        }
                    }

                    await worker.DisposeAsync().ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogPrestartFailed(_logger, ex);
                }
            },
            cancellationToken));
        return Task.WhenAll(starts);
    }

    /// <summary>A worker of its own for an actor: never pooled, gone when the actor is.</summary>
    public async Task<WorkerProcess> StartDedicatedAsync(WorkerEnvironment environment, string clientId, string name)
    {
        var worker = await WorkerProcess.StartAsync(environment.PythonExecutable ?? Python, _script, environment, _onOutput, _logger, clientId, CancellationToken.None, _onCallback).ConfigureAwait(false);
        worker.Dedicate(clientId, name);
        lock (_lock)
        {
            if (_disposed)
            {
                _ = worker.DisposeAsync().AsTask();
                throw new ObjectDisposedException(nameof(WorkerPool));
            }

            _all.Add(worker);
            _dedicated.Add(worker);
            Started++;
        }

        _ = worker.Exited.ContinueWith(
            _ =>
            {
                lock (_lock)
                {
                    _all.Remove(worker);
                    _dedicated.Remove(worker);
                }
            },
            TaskScheduler.Default);
        return worker;
    }

    public void Return(WorkerProcess worker)
    {
        WorkerProcess? retire = null;
        lock (_lock)
        {
            if (_disposed || !worker.IsAlive)
            {
                _all.Remove(worker);
                retire = worker;
            }
            else
            {
                worker.Unassign();
                if (!_idle.TryGetValue(worker.Environment.Key, out var stack))
                {
                    _idle[worker.Environment.Key] = stack = new Stack<WorkerProcess>();
                }

                stack.Push(worker);
                retire = TrimIdle(worker.Environment.Key);
            }
        }

        if (retire is not null)
        {
            _ = retire.DisposeAsync().AsTask();
        }
    }

    /// <summary>Retires one idle worker of another environment when too many are idle.</summary>
    private WorkerProcess? TrimIdle(string keep)
    {
        var idleCount = _idle.Values.Sum(s => s.Count);
        if (idleCount <= _maxIdle)
        {
            return null;
        }

        foreach (var (key, stack) in _idle)
        {
            if (key != keep && stack.TryPop(out var victim))
            {
                _all.Remove(victim);
                return victim;
            }
        }

        return null;
    }

    /// <summary>Writes the worker script, and the module it imports from its own directory.</summary>
    private static string ExtractScript(string workDirectory)
    {
        Directory.CreateDirectory(workDirectory);
        PythonResources.Write(PythonResources.Shared, Path.Combine(workDirectory, PythonResources.Shared));
        var path = Path.Combine(workDirectory, PythonResources.Worker);
        PythonResources.Write(PythonResources.Worker, path);
        return path;
    }

    public async ValueTask DisposeAsync()
    {
        List<WorkerProcess> all;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            all = [.. _all];
            _all.Clear();
            _idle.Clear();
        }

        await Task.WhenAll(all.Select(w => w.DisposeAsync().AsTask())).ConfigureAwait(false);
    }

    [LoggerMessage(EventId = ServerEventIds.WorkerPrestartFailed, EventName = nameof(ServerEventIds.WorkerPrestartFailed), Level = LogLevel.Warning,
        Message = "A prestarted Python worker failed to start; tasks start their own.")]
    private static partial void LogPrestartFailed(ILogger logger, Exception exception);
}
