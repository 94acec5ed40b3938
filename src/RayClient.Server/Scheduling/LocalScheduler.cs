using System.Globalization;
using Microsoft.Extensions.Logging;
using RayClient.Server.Storage;
using RayClient.Server.Workers;

namespace RayClient.Server.Scheduling;

/// <summary>A task accepted by the server and waiting to run, running, or finished.</summary>
internal sealed class TaskSpec
{
    public required ClientSession Client { get; init; }

    public required string Name { get; init; }

    public required string FunctionKey { get; init; }

    public required ReadOnlyMemory<byte> FunctionPickle { get; init; }

    public required ReadOnlyMemory<byte> Args { get; init; }

    public required StoredObject[] Returns { get; init; }

    /// <summary>Objects passed directly as arguments: the task runs when they are ready, with their values.</summary>
    public required IReadOnlyList<StoredObject> Dependencies { get; init; }

    /// <summary>Every object the arguments refer to (held until the task ends).</summary>
    public required IReadOnlyList<StoredObject> Held { get; init; }

    public required IReadOnlyDictionary<string, double> Resources { get; init; }

    /// <summary>Tasks with equal demands queue together (Ray's scheduling classes).</summary>
    public string ResourceShape => _shape ??= string.Join(';', Resources.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key}={kv.Value}")));

    private string? _shape;

    public required int MaxRetries { get; init; }

    /// <summary>The worker environment, possibly still being prepared (unpacking, pip install).</summary>
    public required Task<WorkerEnvironment> Environment { get; init; }

    /// <summary>The runtime env the task runs in (the job's merged with the task's), inherited by its children.</summary>
    public IReadOnlyDictionary<string, object?>? RuntimeEnv { get; init; }

    /// <summary>Times the task was started in a worker.</summary>
    public int Attempts { get; private set; }

    private volatile bool _cancelled;

    /// <summary>Set by ray.cancel: the task must not run (again) and its results are TaskCancelledError.</summary>
    public bool Cancelled => _cancelled;

    /// <summary>ray.cancel reached the task: from now on it must not run (again).</summary>
    public void MarkCancelled() => _cancelled = true;

    /// <summary>The worker running the task now, if any.</summary>
    public WorkerProcess? RunningOn { get; private set; }

    /// <summary>The task whose Python code submitted this one (<c>f.remote()</c> inside a task), if any.</summary>
    public TaskSpec? Parent { get; init; }

    /// <summary>Unfinished tasks this one submitted; a recursive cancel reaches them (guarded by the set itself).</summary>
    public HashSet<TaskSpec> Children { get; } = [];

    /// <summary>
    /// How many <c>ray.get</c> calls of the running task wait now (its threads may wait
    /// concurrently). While any does, the task has lent its resources back to the scheduler, as a
    /// blocked Ray worker does (so children can run; no deadlock on a full node). Guarded by the
    /// scheduler's lock.
    /// </summary>
    public int BlockedGets { get; private set; }

    /// <summary>The task was handed to <paramref name="worker"/> (null: it left its worker).</summary>
    public void RunOn(WorkerProcess? worker) => RunningOn = worker;

    /// <summary>The task's body starts (again) in its worker.</summary>
    public void CountAttempt() => Attempts++;

    /// <summary>One more <c>ray.get</c> of the task waits; true when it is the first (the task then lends its resources).</summary>
    public bool BlockGet() => BlockedGets++ == 0;

    /// <summary>A waiting <c>ray.get</c> returned; true when it was the last (the task then takes its resources back).</summary>
    public bool UnblockGet() => BlockedGets != 0 && --BlockedGets == 0;

    /// <summary>The task ended: forgets its waiting gets; true when its resources were lent out at that moment.</summary>
    public bool ClearBlockedGets()
    {
        var lent = BlockedGets > 0;
        BlockedGets = 0;
        return lent;
    }
}

/// <summary>
/// Accounts CPUs, GPUs and custom resources as Ray does: a task waits while its resources are in
/// use, and a task that needs more than the whole server has fails at once instead of waiting forever.
/// </summary>
internal sealed partial class LocalScheduler
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, double> _total;
    private readonly Dictionary<string, double> _available;
    // One FIFO per resource shape: dispatching looks only at queue heads, so a long queue costs
    // nothing per completion (a single list scanned on every completion was quadratic).
    private readonly Dictionary<string, Queue<TaskSpec>> _queues = new(StringComparer.Ordinal);
    private readonly List<Queue<TaskSpec>> _queueOrder = [];
    private int _pumpScheduled;
    private readonly Queue<(IReadOnlyDictionary<string, double> Demand, TaskCompletionSource Granted)> _reservations = new();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<RayId, TaskSpec> _byReturn = new();
    private readonly WorkerPool _pool;
    private readonly ObjectStore _store;
    private readonly ILogger _logger;
    private long _executions;
    private long _completed;

    public LocalScheduler(IReadOnlyDictionary<string, double> total, WorkerPool pool, ObjectStore store, ILogger logger)
    {
        _total = new Dictionary<string, double>(total, StringComparer.Ordinal);
        _available = new Dictionary<string, double>(total, StringComparer.Ordinal);
        _pool = pool;
        _store = store;
        _logger = logger;
    }

    /// <summary>Times a task body was started in a worker (retries count again).</summary>
    public long Executions => Interlocked.Read(ref _executions);

    /// <summary>Tasks finished (with a value or an error).</summary>
    public long Completed => Interlocked.Read(ref _completed);

    public IReadOnlyDictionary<string, double> Total => _total;

    public Dictionary<string, double> AvailableSnapshot()
    {
        lock (_lock)
        {
            return new Dictionary<string, double>(_available, StringComparer.Ordinal);
        }
    }

    /// <summary>Null when the server can ever satisfy <paramref name="demand"/>, else why not.</summary>
    public string? CheckFeasible(IReadOnlyDictionary<string, double> demand)
    {
        foreach (var (name, amount) in demand)
        {
            var total = _total.GetValueOrDefault(name);
            if (amount > total + 1e-9)
            {
                return string.Create(CultureInfo.InvariantCulture,
                    $"The task needs {amount:0.###} {name}, but the whole cluster has {total:0.###} (resources: {Describe(_total)}). It could never run: lower the request or add resources to the server.");
            }
        }

        return null;
    }

    public void Submit(TaskSpec task)
    {
        if (task.Returns.Length > 0)
        {
            _byReturn[task.Returns[0].Id] = task; // ray.cancel names a task by its (first) result
        }
        if (task.Dependencies.Count == 0 || task.Dependencies.All(d => d.IsReady))
        {
            OnDependenciesReady(task);
            return;
        }

        _ = WaitForDependenciesAsync(task);
    }

    private async Task WaitForDependenciesAsync(TaskSpec task)
    {
        foreach (var dependency in task.Dependencies)
        {
            await dependency.Ready.ConfigureAwait(false);
        }

        OnDependenciesReady(task);
    }

    private void OnDependenciesReady(TaskSpec task)
    {
        // A failed argument fails the task without running it, as in Ray.
        var failed = task.Dependencies.FirstOrDefault(d => d.IsError);
        if (failed is not null)
        {
            foreach (var output in task.Returns)
            {
                output.TrySet(failed.Data, isError: true);
            }

            Finish(task);
            return;
        }

        lock (_lock)
        {
            if (!_queues.TryGetValue(task.ResourceShape, out var queue))
            {
                _queues[task.ResourceShape] = queue = new Queue<TaskSpec>();
                _queueOrder.Add(queue);
            }

            queue.Enqueue(task);
        }

        SchedulePump();
    }

    /// <summary>Holds <paramref name="demand"/> for an actor's lifetime; completes once the resources are free (actors queue like tasks).</summary>
    public Task ReserveAsync(IReadOnlyDictionary<string, double> demand)
    {
        if (demand.Count == 0)
        {
            return Task.CompletedTask;
        }

        var granted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            _reservations.Enqueue((demand, granted));
        }

        SchedulePump();
        return granted.Task;
    }

    /// <summary>Gives back what <see cref="ReserveAsync"/> took.</summary>
    public void Unreserve(IReadOnlyDictionary<string, double> demand)
    {
        lock (_lock)
        {
            foreach (var (name, amount) in demand)
            {
                _available[name] += amount;
            }
        }

        SchedulePump();
    }

    /// <summary>Dispatches off the caller's thread (the Datapath loop must not wait for a worker), once for many submissions.</summary>
    private void SchedulePump()
    {
        if (Interlocked.Exchange(ref _pumpScheduled, 1) == 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(
                static scheduler =>
                {
                    Volatile.Write(ref scheduler._pumpScheduled, 0);
                    scheduler.Pump();
                },
                this,
                preferLocal: false);
        }
    }

    private void Pump()
    {
        List<TaskSpec>? start = null;
        List<TaskSpec>? dropped = null;
        List<TaskCompletionSource>? granted = null;
        lock (_lock)
        {
            while (_reservations.TryPeek(out var reservation) && Fits(reservation.Demand))
            {
                foreach (var (name, amount) in reservation.Demand)
                {
                    _available[name] -= amount;
                }

                _reservations.Dequeue();
                (granted ??= []).Add(reservation.Granted);
            }

            foreach (var queue in _queueOrder)
            {
                while (queue.TryPeek(out var task))
                {
                    if (task.Client.IsClosed || task.Cancelled)
                    {
                        // The job ended: its queued tasks never run (Ray kills the job's work).
                        queue.Dequeue();
                        (dropped ??= []).Add(task);
                        continue;
                    }

                    if (!Fits(task.Resources))
                    {
                        break;
                    }

                    foreach (var (name, amount) in task.Resources)
                    {
                        _available[name] -= amount;
                    }

                    queue.Dequeue();
                    (start ??= []).Add(task);
                }
            }
        }

        foreach (var reservation in granted ?? [])
        {
            reservation.TrySetResult();
        }

        foreach (var task in dropped ?? [])
        {
            Finish(task);
        }

        foreach (var task in start ?? [])
        {
            _ = RunAsync(task);
        }
    }

    private bool Fits(IReadOnlyDictionary<string, double> demand)
    {
        foreach (var (name, amount) in demand)
        {
            if (_available.GetValueOrDefault(name) + 1e-9 < amount)
            {
                return false;
            }
        }

        return true;
    }

    private async Task RunAsync(TaskSpec task)
    {
        WorkerProcess worker;
        try
        {
            var environment = await task.Environment.ConfigureAwait(false);
            worker = await _pool.AcquireAsync(environment, task.Client.ClientId, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RayClient.Server.RuntimeEnv.RuntimeEnvSetupException or RayRuntimeEnvException)
        {
            Complete(task, null, null, ex);
            return;
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or System.ComponentModel.Win32Exception or TimeoutException or WorkerCrashedException)
        {
            Complete(task, null, null, new WorkerStartException(ex.Message));
            return;
        }

        // The pool marked the worker as the job's under its lock, then the job is re-checked: a job
        // that closed while the worker was being acquired (or started) either sees this worker in
        // KillWorkersOf, or is seen closed here. Either way the task does not run.
        worker.BeginTask(task);
        task.RunOn(worker);
        if (task.Cancelled)
        {
            Complete(task, worker, null, new TaskCancelledException());
            return;
        }

        if (task.Client.IsClosed)
        {
            Complete(task, worker, null, new JobEndedException());
            return;
        }

        var dependencies = new List<(byte[], ReadOnlyMemory<byte>)>(task.Dependencies.Count);
        foreach (var dependency in task.Dependencies)
        {
            dependencies.Add((dependency.Id.Bytes, dependency.Data));
        }

        task.CountAttempt();
        Interlocked.Increment(ref _executions);
        try
        {
            await worker.StartAsync(
                task.FunctionKey,
                task.FunctionPickle,
                task.Name,
                task.Client.ClientId,
                task.Args,
                task.Returns.Length,
                dependencies,
                (result, error) => Complete(task, worker, result, error),
                CancellationToken.None).ConfigureAwait(false);
        }
        catch (WorkerCrashedException crash)
        {
            Complete(task, worker, null, crash);
        }
    }

    /// <summary>Runs on the worker's read loop: stores the result, frees the CPU and dispatches the next task.</summary>
    private void Complete(TaskSpec task, WorkerProcess? worker, WorkerResult? result, Exception? error)
    {
        var retry = false;
        task.RunOn(null);
        try
        {
            if (task.Cancelled && (result is null || result.IsError))
            {
                result?.Dispose();
                SetCancelled(task);
            }
            else if (result is not null)
            {
                using (result)
                {
                    Store(task, result);
                }
            }
            else if ((error is WorkerCrashedException && task.Client.IsClosed) || error is JobEndedException)
            {
                // The job ended and its worker was stopped: nobody waits for this result.
            }
            else if (error is WorkerCrashedException crash)
            {
                if (task.MaxRetries < 0 || task.Attempts <= task.MaxRetries)
                {
                    LogRetry(_logger, task.Name, task.Attempts, crash.Message);
                    retry = true;
                }
                else
                {
                    var pickle = ServerErrors.Pickle("ray.exceptions", "WorkerCrashedError",
                        $"The worker died unexpectedly while executing {task.Name} ({crash.Message}); the task was tried {task.Attempts} time(s) (max_retries={task.MaxRetries}).");
                    foreach (var output in task.Returns)
                    {
                        output.TrySet(pickle, isError: true);
                    }
                }
            }
            else if (error is RayClient.Server.RuntimeEnv.RuntimeEnvSetupException or RayRuntimeEnvException)
            {
                // A setup failure, not a task failure (Ray's RuntimeEnvSetupError), with pip's own output.
                var pickle = ServerErrors.Pickle("ray.exceptions", "RuntimeEnvSetupError", $"Failed to set up the runtime env of {task.Name}: {error.Message}");
                foreach (var output in task.Returns)
                {
                    output.TrySet(pickle, isError: true);
                }
            }
            else
            {
                var pickle = ServerErrors.Pickle("ray.exceptions", "RaySystemError", $"Could not start a Python worker for {task.Name}: {error?.Message}");
                foreach (var output in task.Returns)
                {
                    output.TrySet(pickle, isError: true);
                }
            }
        }
        finally
        {
            if (worker is not null)
            {
                worker.EndTask();
                _pool.Return(worker);
            }

            lock (_lock)
            {
                var lent = task.ClearBlockedGets(); // then already given back while it waited in ray.get
                if (!lent)
                {
                    foreach (var (name, amount) in task.Resources)
                    {
                        _available[name] += amount;
                    }
                }
            }
        }

        if (retry)
        {
            OnDependenciesReady(task);
        }
        else
        {
            Finish(task);
        }

        Pump();
    }

    private void Store(TaskSpec task, WorkerResult result)
    {
        if (result.IsError)
        {
            var error = result.Values[0].ToArray();
            foreach (var output in task.Returns)
            {
                output.TrySet(error, isError: true);
            }

            return;
        }

        List<StoredObject>? contained = null;
        foreach (var (kind, id) in result.Contained)
        {
            if (kind == 'O' && _store.TryGet(new RayId(id), out var inner))
            {
                inner.AddReference();
                (contained ??= []).Add(inner);
            }
        }

        if (result.Values.Count == 1 && task.Returns.Length == 1)
        {
            // The frame buffer becomes the object's storage: no copy of the value.
            var frame = result.DetachFrame();
            if (!task.Returns[0].TrySet(result.Values[0], isError: false, frame, contained))
            {
                ReleaseContained(contained);
            }

            return;
        }

        for (var i = 0; i < task.Returns.Length; i++)
        {
            task.Returns[i].TrySet(result.Values[i].ToArray(), isError: false, pooled: null, contained: i == 0 ? contained : null);
        }
    }

    private void ReleaseContained(List<StoredObject>? contained)
    {
        foreach (var inner in contained ?? [])
        {
            _store.Release(inner);
        }
    }

    /// <summary>
    /// ray.cancel: a queued task never runs; a running one is interrupted (force: its worker is
    /// killed). Either way its results become TaskCancelledError and it is not retried.
    /// </summary>
    /// <summary>
    /// Ray's <c>ray.cancel(ref, force, recursive)</c>: a queued task never runs; a running one is
    /// interrupted (SIGINT, <c>TaskCancelledError</c>) or, with <paramref name="force"/>, its worker
    /// is killed. With <paramref name="recursive"/>, every task it submitted is cancelled the same way.
    /// </summary>
    public void Cancel(StoredObject output, bool force, bool recursive)
    {
        if (_byReturn.TryGetValue(output.Id, out var task) && !output.IsReady)
        {
            Cancel(task, force, recursive);
        }
    }

    private void Cancel(TaskSpec task, bool force, bool recursive)
    {
        if (recursive)
        {
            // Children first: an interrupted parent must not see them finish normally.
            TaskSpec[] children;
            lock (task.Children)
            {
                children = [.. task.Children];
            }

            foreach (var child in children)
            {
                Cancel(child, force, recursive: true);
            }
        }

        if (task.Returns.Length > 0 && task.Returns[0].IsReady)
        {
            return; // finished already
        }

        task.MarkCancelled();
        if (task.RunningOn is { } worker)
        {
            if (force)
            {
                worker.Kill();
            }
            else
            {
                worker.Interrupt();
            }

            return;
        }

        SetCancelled(task); // queued or waiting for arguments: dropped when it comes up
    }

    /// <summary>Registers a task submitted by the Python code of <paramref name="parent"/>.</summary>
    public static void AddChild(TaskSpec parent, TaskSpec child)
    {
        lock (parent.Children)
        {
            parent.Children.Add(child);
        }
    }

    /// <summary>The task's worker blocks in <c>ray.get</c>: its resources serve other tasks meanwhile.</summary>
    public void LendResources(TaskSpec task)
    {
        lock (_lock)
        {
            if (task.RunningOn is null || !task.BlockGet())
            {
                return;
            }

            foreach (var (name, amount) in task.Resources)
            {
                _available[name] += amount;
            }
        }

        SchedulePump();
    }

    /// <summary>
    /// A <c>ray.get</c> of the task returned: when it was the last one waiting, the task takes its
    /// resources back at once, even if that oversubscribes the node for a moment, as Ray's
    /// unblocked workers do.
    /// </summary>
    public void ReclaimResources(TaskSpec task)
    {
        lock (_lock)
        {
            if (!task.UnblockGet())
            {
                return;
            }

            foreach (var (name, amount) in task.Resources)
            {
                _available[name] -= amount;
            }
        }
    }

    private static void SetCancelled(TaskSpec task)
    {
        var pickle = ServerErrors.Pickle("ray.exceptions", "TaskCancelledError", $"Task {task.Name} was cancelled.");
        foreach (var output in task.Returns)
        {
            output.TrySet(pickle, isError: true);
        }
    }

    private void Finish(TaskSpec task)
    {
        if (task.Parent is { } parent)
        {
            lock (parent.Children)
            {
                parent.Children.Remove(task); // a long-running parent does not collect its finished children
            }
        }

        if (task.Returns.Length > 0)
        {
            _byReturn.TryRemove(new KeyValuePair<RayId, TaskSpec>(task.Returns[0].Id, task));
        }
        Interlocked.Increment(ref _completed);
        foreach (var held in task.Held)
        {
            _store.Release(held);
        }

        foreach (var output in task.Returns)
        {
            _store.Release(output); // the task's own reference; the client's hold keeps it
        }
    }

    private static string Describe(IReadOnlyDictionary<string, double> resources) =>
        string.Join(", ", resources.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key}={kv.Value:0.###}")));

    [LoggerMessage(EventId = ServerEventIds.TaskRetry, EventName = nameof(ServerEventIds.TaskRetry), Level = LogLevel.Warning,
        Message = "The worker running {Task} died (attempt {Attempt}: {Reason}); retrying.")]
    private static partial void LogRetry(ILogger logger, string task, int attempt, string reason);
}

/// <summary>A Python worker could not be started.</summary>
internal sealed class WorkerStartException(string message) : Exception(message);

/// <summary>The task's job ended before the task reached a worker: it never runs, and nobody waits for it.</summary>
internal sealed class JobEndedException() : Exception("the job ended");

/// <summary>The task was cancelled before it reached a worker.</summary>
internal sealed class TaskCancelledException() : Exception("cancelled");
