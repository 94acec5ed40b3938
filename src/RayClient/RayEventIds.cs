namespace RayClient;

/// <summary>Event ids of RayClient's log messages, kept in one place (as npgsql's NpgsqlEventId).</summary>
public static class RayEventIds
{
    /// <summary>Connecting to a Ray client server.</summary>
    public const int Connecting = 1000;

    /// <summary>Connected and initialized.</summary>
    public const int Connected = 1001;

    /// <summary>A connection attempt failed and will be retried.</summary>
    public const int ConnectAttemptFailed = 1002;

    /// <summary>The server's Ray version is outside the supported window but mismatches are ignored.</summary>
    public const int VersionMismatchIgnored = 1003;

    /// <summary>A runtime-env package was uploaded.</summary>
    public const int PackageUploaded = 1004;

    /// <summary>A runtime-env package was already on the cluster; nothing was uploaded.</summary>
    public const int PackageAlreadyPresent = 1005;

    /// <summary>A file of 10 MiB or more is being packed (Ray's FILE_SIZE_WARNING).</summary>
    public const int PackageLargeFile = 1006;

    /// <summary>The Datapath stream broke.</summary>
    public const int DatapathBroken = 1100;

    /// <summary>The Datapath stream was resumed.</summary>
    public const int DatapathResumed = 1101;

    /// <summary>The session was lost.</summary>
    public const int SessionLost = 1102;

    /// <summary>Closing the Datapath timed out.</summary>
    public const int CloseTimedOut = 1103;

    /// <summary>Closing the Datapath failed.</summary>
    public const int CloseFailed = 1104;

    /// <summary>An attempt to reach the server during an outage failed; another follows.</summary>
    public const int ReconnectAttemptFailed = 1105;

    /// <summary>The log stream broke and is being reopened.</summary>
    public const int LogStreamBroken = 1200;

    /// <summary>A unary call is retried after a transient failure.</summary>
    public const int UnaryRetry = 1300;

    /// <summary>The Jobs API address was taken from the environment or rewritten.</summary>
    public const int JobsAddressWarning = 1400;

    /// <summary>A Jobs API request is retried after a transient failure.</summary>
    public const int JobsRequestRetry = 1401;

    /// <summary>A job was submitted.</summary>
    public const int JobSubmitted = 1402;

    /// <summary>A retried submit found the job its earlier attempt created.</summary>
    public const int JobSubmitRetryFoundJob = 1403;

    /// <summary>A job's log stream ended early and is reopened.</summary>
    public const int JobsLogTailReconnect = 1404;
}
