using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace RayClient.Server;

/// <summary>Client sessions (one Ray job each): creation, Init, the grace period after a broken stream, the end.</summary>
internal sealed partial class ServerState
{
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
        Engine.OnSessionClosed(session);
    }

    /// <summary>Sessions that are still open (tests inspect their held objects).</summary>
    public IReadOnlyCollection<ClientSession> Sessions => _sessions.Values.Where(s => !s.IsClosed).ToList();


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
    /// A Datapath stream of <paramref name="session"/> ended. Unless a newer stream has taken over,
    /// a graceful disconnect (or a session without a grace period) ends the session at once;
    /// otherwise it waits the grace period for a reconnect, on a timer (not inside the handler,
    /// unlike Ray, spec §12.8).
    /// </summary>
    public void OnStreamEnded(ClientSession session, int generation, bool graceful)
    {
        if (!session.IsNewestStream(generation))
        {
            return;
        }

        if (graceful || session.GraceSeconds <= 0)
        {
            CloseSession(session);
            return;
        }

        var cts = new CancellationTokenSource();
        session.AwaitReconnect(cts);
        _ = Task.Delay(TimeSpan.FromSeconds(session.GraceSeconds), Options.TimeProvider, cts.Token).ContinueWith(
            t =>
            {
                if (!t.IsCanceled && session.IsNewestStream(generation))
                {
                    LogGraceExpired(Logger, session.ClientId, session.GraceSeconds);
                    CloseSession(session);
                }
            },
            TaskScheduler.Default);
    }

    [LoggerMessage(EventId = ServerEventIds.GraceExpired, EventName = nameof(ServerEventIds.GraceExpired), Level = LogLevel.Information,
        Message = "Client {ClientId} did not reconnect within {Grace} s; its session was cleaned up.")]
    private static partial void LogGraceExpired(ILogger logger, string clientId, int grace);
}
