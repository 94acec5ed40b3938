using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using RayClient.Server.Scheduling;
using RayClient.Server.Storage;
using RayClient.Server.Workers;

namespace RayClient.Server.Actors;

internal enum ActorState
{
    Starting,
    Alive,
    Restarting,
    Dead,
}

/// <summary>One method call queued on an actor.</summary>
internal sealed class ActorCall
{
    public required ClientSession Client { get; init; }

    public required string Method { get; init; }

    public required ReadOnlyMemory<byte> Args { get; init; }

    public required StoredObject[] Returns { get; init; }

    public required IReadOnlyList<StoredObject> Dependencies { get; init; }

    public required IReadOnlyList<StoredObject> Held { get; init; }

    /// <summary>Times the call was lost with its worker.</summary>
    public int Attempts { get; private set; }

    /// <summary>How many restarts the actor had used when the call was sent (decides whether a restart will follow a crash).</summary>
    public int SentAtRestart { get; private set; }

    /// <summary>The call goes to the actor's worker now, after <paramref name="restarts"/> restarts.</summary>
    public void MarkSent(int restarts) => SentAtRestart = restarts;

    /// <summary>The worker died with the call in flight.</summary>
    public void CountLostAttempt() => Attempts++;
}

/// <summary>
/// An actor: one dedicated worker process holds its state; its methods run in submission order
/// (concurrently up to max_concurrency); a crashed process is restarted up to max_restarts with
/// its state lost, as in Ray.
/// </summary>
internal sealed class ActorRecord
{
    private readonly Channel<ActorCall> _calls = Channel.CreateUnbounded<ActorCall>(new UnboundedChannelOptions { SingleReader = true });
    private TaskCompletionSource<bool> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public required RayId Id { get; init; }

    public required string ClassName { get; init; }

    public required ReadOnlyMemory<byte> ClassPickle { get; init; }

    public required ReadOnlyMemory<byte> InitArgs { get; init; }

    public required IReadOnlyList<StoredObject> InitDependencies { get; init; }

    public required IReadOnlyList<StoredObject> Held { get; init; }

    public required ClientSession Owner { get; init; }

    public required string? Name { get; init; }

    public required string Namespace { get; init; }

    public required bool Detached { get; init; }

    public required int MaxRestarts { get; init; }

    public required int MaxConcurrency { get; init; }

    public required Task<WorkerEnvironment> Environment { get; init; }

    /// <summary>Resources the actor holds for its lifetime (Ray: none unless num_cpus/num_gpus/resources are set).</summary>
    public required IReadOnlyDictionary<string, double> Resources { get; init; }

    public required int MaxTaskRetries { get; init; }

    /// <summary>Client sessions holding a handle; a non-detached, unnamed actor nobody holds is destroyed.</summary>
    public HashSet<ClientSession> Holders { get; } = [];

    public ActorState State { get; private set; } = ActorState.Starting;

    public int Restarts { get; private set; }

    public bool NoRestart { get; private set; }

    /// <summary>The error pickle every call gets once the actor is dead.</summary>
    public byte[]? DeathError { get; private set; }

    public WorkerProcess? Worker { get; private set; }

    public ChannelWriter<ActorCall> Calls => _calls.Writer;

    public ChannelReader<ActorCall> PendingCalls => _calls.Reader;

    /// <summary>Completes with true when the actor is alive, false when it is dead for good.</summary>
    public Task<bool> Ready => Volatile.Read(ref _ready).Task;

    public void SetReady(bool alive) => Volatile.Read(ref _ready).TrySetResult(alive);

    public void ResetReady() => Volatile.Write(ref _ready, new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously));

    /// <summary>
    /// A kill was asked for: with <paramref name="noRestart"/> the actor does not come back, and
    /// unless it is dead already its callers get <paramref name="killedError"/>.
    /// </summary>
    public void RequestKill(bool noRestart, Func<byte[]> killedError)
    {
        NoRestart |= noRestart;
        if (noRestart && State != ActorState.Dead)
        {
            DeathError = killedError();
        }
    }

    /// <summary>Says why the actor is dying, unless a reason was given already.</summary>
    public void SetDeathErrorIfNone(Func<byte[]> error) => DeathError ??= error();

    /// <summary>Its worker could not be started: the actor is not created.</summary>
    public void FailStart(byte[] error) => DeathError = error;

    /// <summary>Its constructor raised: every call gets that error and the actor never restarts.</summary>
    public void FailConstruction(byte[] error)
    {
        DeathError = error;
        NoRestart = true;
    }

    /// <summary>The constructor ran in <paramref name="worker"/>: calls go there now.</summary>
    public void MarkAlive(WorkerProcess worker)
    {
        Worker = worker;
        State = ActorState.Alive;
        SetReady(true);
    }

    /// <summary>The actor is gone for good: waiting callers see it dead and no call is taken any more.</summary>
    public void MarkDead(Func<byte[]> error)
    {
        State = ActorState.Dead;
        DeathError ??= error();
        SetReady(false);
        _calls.Writer.TryComplete();
    }

    private readonly Lock _exitGate = new();

    /// <summary>
    /// Decides, once per worker, what its exit means: a restart (Ready becomes pending until the
    /// new instance is up) or the end (Ready becomes false). Both the supervisor and a call that
    /// finds the worker dead call it; whoever comes first decides.
    /// </summary>
    public void HandleWorkerExit(WorkerProcess worker, Func<string, byte[]> died)
    {
        lock (_exitGate)
        {
            if (Worker != worker)
            {
                return;
            }

            Worker = null;
            if (NoRestart || (MaxRestarts >= 0 && Restarts >= MaxRestarts))
            {
                DeathError ??= died(NoRestart ? "the actor was killed" : $"its worker process died and max_restarts={MaxRestarts} restarts are used up");
                State = ActorState.Dead;
                ResetReady();
                SetReady(false);
                return;
            }

            Restarts++;
            State = ActorState.Restarting;
            ResetReady();
        }
    }
}

/// <summary>Creates, names, runs, restarts and kills actors for the embedded server.</summary>
internal sealed partial class ActorManager
{
    private readonly LocalScheduler _scheduler;
    private readonly WorkerPool _pool;
    private readonly ObjectStore _store;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<RayId, ActorRecord> _actors = new();
    private readonly ConcurrentDictionary<(string Namespace, string Name), ActorRecord> _named = new();
    private readonly Lock _nameLock = new();
    private long _counter;

    public ActorManager(LocalScheduler scheduler, WorkerPool pool, ObjectStore store, ILogger logger)
    {
        _scheduler = scheduler;
        _pool = pool;
        _store = store;
        _logger = logger;
    }

    public bool TryGet(RayId id, out ActorRecord actor) => _actors.TryGetValue(id, out actor!);

    /// <summary>Registers and starts an actor; returns the existing one for get_if_exists.</summary>
    /// <exception cref="TicketException">The name is taken (and get_if_exists is false).</exception>
    public ActorRecord Create(Func<RayId, ActorRecord> build, string? name, string rayNamespace, bool getIfExists)
    {
        lock (_nameLock)
        {
            if (name is not null && _named.TryGetValue((rayNamespace, name), out var existing) && existing.State != ActorState.Dead)
            {
                if (getIfExists)
                {
                    return existing;
                }

                throw new TicketException(ServerErrors.ValueError(
                    $"The name {name} (namespace={rayNamespace}) is already taken. Please use a different name or get the existing actor using ray.get_actor('{name}', namespace='{rayNamespace}')"));
            }

            var actor = build(RayId.NewUnique(16, ref _counter));
            _actors[actor.Id] = actor;
            if (name is not null)
            {
                _named[(rayNamespace, name)] = actor;
            }

            _ = RunAsync(actor);
            return actor;
        }
    }

    public ActorRecord? FindNamed(string name, string rayNamespace) =>
        _named.TryGetValue((rayNamespace, name), out var actor) && actor.State != ActorState.Dead ? actor : null;

    public string ListNamedJson(string rayNamespace, bool allNamespaces)
    {
        var live = _named.Where(kv => kv.Value.State != ActorState.Dead).Select(kv => kv.Key).OrderBy(k => k.Namespace, StringComparer.Ordinal).ThenBy(k => k.Name, StringComparer.Ordinal);
        return allNamespaces
            ? new JsonArray([.. live.Select(k => (JsonNode)new JsonObject { ["name"] = k.Name, ["namespace"] = k.Namespace })]).ToJsonString()
            : new JsonArray([.. live.Where(k => k.Namespace == rayNamespace).Select(k => (JsonNode?)JsonValue.Create(k.Name))]).ToJsonString();
    }

    public void Submit(ActorRecord actor, ActorCall call)
    {
        if (!actor.Calls.TryWrite(call))
        {
            Fail(call, actor.DeathError ?? ActorDied(actor, "the actor is dead"));
        }
    }

    /// <summary>Kills the actor's process; it restarts unless <paramref name="noRestart"/> or its restarts are used up.</summary>
    public void Kill(ActorRecord actor, bool noRestart)
    {
        actor.RequestKill(noRestart, () => ActorDied(actor, "the actor was killed with ray.kill"));

        actor.Worker?.Kill();
        if (actor.Worker is null && noRestart)
        {
            MarkDead(actor);
        }
    }

    /// <summary>A client released its handle (ReleaseRequest with the actor id); an unheld, unnamed, non-detached actor ends.</summary>
    public bool Release(ClientSession session, RayId id)
    {
        if (!_actors.TryGetValue(id, out var actor))
        {
            return false;
        }

        bool orphaned;
        lock (actor.Holders)
        {
            actor.Holders.Remove(session);
            orphaned = actor.Holders.Count == 0;
        }

        if (orphaned && !actor.Detached && actor.Name is null)
        {
            actor.SetDeathErrorIfNone(() => ActorDied(actor, "every handle to it was released"));
            Kill(actor, noRestart: true);
        }

        return true;
    }

    public static void Hold(ActorRecord actor, ClientSession session)
    {
        lock (actor.Holders)
        {
            actor.Holders.Add(session);
        }
    }

    /// <summary>The job ended: its non-detached actors die with it.</summary>
    public void OnSessionClosed(ClientSession session)
    {
        foreach (var actor in _actors.Values.Where(a => a.Owner == session && !a.Detached))
        {
            actor.SetDeathErrorIfNone(() => ActorDied(actor, "the job that created it ended"));
            Kill(actor, noRestart: true);
        }
    }

    private async Task RunAsync(ActorRecord actor)
    {
        var processing = ProcessCallsAsync(actor);
        await _scheduler.ReserveAsync(actor.Resources).ConfigureAwait(false);
        while (true)
        {
            var created = await StartAsync(actor).ConfigureAwait(false);
            if (!created)
            {
                break;
            }

            var worker = actor.Worker!;
            await worker.Exited.ConfigureAwait(false);
            actor.HandleWorkerExit(worker, why => ActorDied(actor, why));
            if (actor.State != ActorState.Restarting)
            {
                break;
            }

            LogRestart(_logger, actor.ClassName, actor.Restarts);
        }

        MarkDead(actor);
        _scheduler.Unreserve(actor.Resources);
        await processing.ConfigureAwait(false);
    }

    private static void MarkDead(ActorRecord actor) => actor.MarkDead(() => ActorDied(actor, "the actor died"));

    /// <summary>Starts the worker and runs the constructor; false when the actor cannot be created.</summary>
    private async Task<bool> StartAsync(ActorRecord actor)
    {
        WorkerProcess worker;
        try
        {
            var environment = await actor.Environment.ConfigureAwait(false);
            foreach (var dependency in actor.InitDependencies)
            {
                await dependency.Ready.ConfigureAwait(false);
            }

            worker = await _pool.StartDedicatedAsync(environment, actor.Owner.ClientId, actor.ClassName).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            actor.FailStart(ActorDied(actor, $"its worker could not be started: {ex.Message}"));
            return false;
        }

        var constructed = new TaskCompletionSource<byte[]?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var dependencies = actor.InitDependencies.Select(d => (d.Id.Bytes, d.Data)).ToList();
        try
        {
            await worker.StartAsync(
                actor.MaxConcurrency.ToString(System.Globalization.CultureInfo.InvariantCulture),
                actor.ClassPickle,
                actor.ClassName,
                actor.Owner.ClientId,
                actor.InitArgs,
                1,
                dependencies,
                (result, error) =>
                {
                    using (result)
                    {
                        constructed.TrySetResult(result is { IsError: false } ? null : result?.Values[0].ToArray() ?? ServerErrors.Pickle("ray.exceptions", "RayActorError", error?.Message ?? "the actor's worker died"));
                    }
                },
                CancellationToken.None,
                WorkerProcess.KindCreateActor).ConfigureAwait(false);
        }
        catch (WorkerCrashedException crash)
        {
            constructed.TrySetResult(ServerErrors.Pickle("ray.exceptions", "RayActorError", crash.Message));
        }

        var failure = await constructed.Task.ConfigureAwait(false);
        if (failure is not null)
        {
            // The constructor raised: every call gets that error (Ray's ActorDiedError with the cause).
            actor.FailConstruction(failure);
            worker.Kill();
            await worker.DisposeAsync().ConfigureAwait(false);
            return false;
        }

        actor.MarkAlive(worker);
        return true;
    }

    /// <summary>Sends calls to the worker in submission order; each waits for its arguments first.</summary>
    private async Task ProcessCallsAsync(ActorRecord actor)
    {
        await foreach (var call in actor.PendingCalls.ReadAllAsync().ConfigureAwait(false))
        {
            foreach (var dependency in call.Dependencies)
            {
                await dependency.Ready.ConfigureAwait(false);
            }

            if (call.Dependencies.FirstOrDefault(d => d.IsError) is { } failedArgument)
            {
                Finish(call, failedArgument.Data.ToArray());
                continue;
            }

            // Wait for a live instance: a worker that died since is handled here if the supervisor
            // has not noticed yet, so a call queued behind a crash waits for the restart.
            WorkerProcess? worker = null;
            while (await actor.Ready.ConfigureAwait(false))
            {
                var current = actor.Worker;
                if (current is { IsAlive: true })
                {
                    worker = current;
                    break;
                }

                if (current is not null)
                {
                    await current.Exited.ConfigureAwait(false);
                    actor.HandleWorkerExit(current, why => ActorDied(actor, why));
                }
            }

            if (worker is null)
            {
                Fail(call, actor.DeathError ?? ActorDied(actor, "the actor died"));
                continue;
            }

            var dependencies = call.Dependencies.Select(d => (d.Id.Bytes, d.Data)).ToList();
            call.MarkSent(actor.Restarts);
            try
            {
                await worker.StartAsync(
                    call.Method,
                    ReadOnlyMemory<byte>.Empty,
                    $"{actor.ClassName}.{call.Method}",
                    call.Client.ClientId,
                    call.Args,
                    call.Returns.Length,
                    dependencies,
                    (result, error) => OnCallDone(actor, call, result, error),
                    CancellationToken.None,
                    WorkerProcess.KindCallMethod).ConfigureAwait(false);
            }
            catch (WorkerCrashedException crash)
            {
                OnCallDone(actor, call, null, crash);
            }
        }
    }

    private void OnCallDone(ActorRecord actor, ActorCall call, WorkerResult? result, Exception? error)
    {
        if (result is null)
        {
            // The process died with the call in flight: Ray retries it on the restarted actor up to
            // max_task_retries (-1: always), else fails it with ActorDiedError.
            call.CountLostAttempt();
            // Decided from the restart count when the call was sent: the supervisor may already
            // have counted the restart this crash causes.
            var willRestart = !actor.NoRestart && (actor.MaxRestarts < 0 || call.SentAtRestart < actor.MaxRestarts);
            if (willRestart && (actor.MaxTaskRetries < 0 || call.Attempts <= actor.MaxTaskRetries) && actor.Calls.TryWrite(call))
            {
                return;
            }

            Fail(call, ActorDied(actor, $"its worker process died while running {call.Method} ({error?.Message})"));
            return;
        }

        using (result)
        {
            if (result.IsError)
            {
                Finish(call, result.Values[0].ToArray());
                return;
            }

            for (var i = 0; i < call.Returns.Length; i++)
            {
                call.Returns[i].TrySet(result.Values[i].ToArray(), isError: false);
            }
        }

        Release(call);
    }

    private void Fail(ActorCall call, byte[] error) => Finish(call, error);

    private void Finish(ActorCall call, byte[] error)
    {
        foreach (var output in call.Returns)
        {
            output.TrySet(error, isError: true);
        }

        Release(call);
    }

    private void Release(ActorCall call)
    {
        foreach (var held in call.Held)
        {
            _store.Release(held);
        }

        foreach (var output in call.Returns)
        {
            _store.Release(output);
        }
    }

    private static byte[] ActorDied(ActorRecord actor, string why) =>
        ServerErrors.Pickle("ray.exceptions", "ActorDiedError",
            $"The actor {actor.ClassName} ({actor.Id.Hex}{(actor.Name is null ? string.Empty : $", name '{actor.Name}'")}) died: {why}.");

    [LoggerMessage(EventId = ServerEventIds.ActorRestart, EventName = nameof(ServerEventIds.ActorRestart), Level = LogLevel.Warning,
        Message = "Restarting actor {ClassName} (restart {Restart}); its state is lost.")]
    private static partial void LogRestart(ILogger logger, string className, int restart);
}
