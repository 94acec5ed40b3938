namespace RayClient.Server;

/// <summary>
/// Event ids of the embedded server's log messages, kept in one place (as the client's
/// <c>RayEventIds</c> and npgsql's NpgsqlEventId), so a log filter can name them.
/// </summary>
public static class ServerEventIds
{
    /// <summary>The worker running a task died; the task is tried again.</summary>
    public const int TaskRetry = 2001;

    /// <summary>A Datapath stream's <c>reconnecting</c> metadata is neither True nor False.</summary>
    public const int BadReconnectingMetadata = 2100;

    /// <summary>A client broke the Datapath protocol; its stream fails and its session ends.</summary>
    public const int ProtocolError = 2101;

    /// <summary>A client did not reconnect within its grace period; its session was cleaned up.</summary>
    public const int GraceExpired = 2102;

    /// <summary>The previous Datapath stream of a reconnecting client did not stop in time.</summary>
    public const int OldStreamStuck = 2103;

    /// <summary>A Datapath stream opened.</summary>
    public const int StreamOpened = 2104;

    /// <summary>A Datapath stream ended.</summary>
    public const int StreamEnded = 2105;

    /// <summary>A Datapath stream failed.</summary>
    public const int StreamFailed = 2106;

    /// <summary>An actor's worker died and the actor is restarted.</summary>
    public const int ActorRestart = 2200;

    /// <summary>A job was submitted to the Jobs API.</summary>
    public const int JobSubmitted = 2300;

    /// <summary>A job's entrypoint started.</summary>
    public const int JobStarted = 2301;

    /// <summary>A job reached a terminal status.</summary>
    public const int JobFinished = 2302;

    /// <summary>A job is being stopped.</summary>
    public const int JobStopping = 2303;

    /// <summary>Running a job failed inside the server.</summary>
    public const int JobCrashed = 2304;

    /// <summary>A job that was running when the previous server stopped was marked failed.</summary>
    public const int JobRecovered = 2305;

    /// <summary>A stored job record could not be read.</summary>
    public const int JobRecordUnreadable = 2306;

    /// <summary>A job driver's request failed inside the server.</summary>
    public const int DriverRequestFailed = 2310;

    /// <summary>A Python worker process started (pid, interpreter, the client or job it was started for).</summary>
    public const int WorkerStarted = 2400;

    /// <summary>A Python worker process exited because the server stopped it (shut down, or killed on purpose).</summary>
    public const int WorkerExited = 2401;

    /// <summary>A Python worker process exited without the server asking (crash, signal, <c>os._exit</c>).</summary>
    public const int WorkerCrashed = 2402;

    /// <summary>A worker started ahead of the first task (<c>PrestartWorkers</c>) failed to start.</summary>
    public const int WorkerPrestartFailed = 2403;
}
