namespace RayClient;

/// <summary>The connection states of a <see cref="RaySession"/>.</summary>
public enum RayConnectionStatus
{
    /// <summary>Connecting for the first time.</summary>
    Connecting,

    /// <summary>Connected; requests flow.</summary>
    Connected,

    /// <summary>The connection broke; the session is being resumed within the grace period. Calls wait.</summary>
    Reconnecting,

    /// <summary>Resumed after a break; nothing was lost.</summary>
    Reconnected,

    /// <summary>The session is gone (grace period exceeded, or the server forgot it). Every ref and handle is unusable.</summary>
    Lost,

    /// <summary>Closed by <see cref="RaySession.DisposeAsync"/>.</summary>
    Closed,
}

/// <summary>A change of a session's connection state.</summary>
/// <param name="Status">The new state.</param>
/// <param name="At">When the state was entered.</param>
/// <param name="Attempt">Reconnect attempt number (1-based) while <see cref="RayConnectionStatus.Reconnecting"/>; 0 otherwise.</param>
/// <param name="Since">When the current outage started, for Reconnecting, Reconnected and Lost.</param>
/// <param name="Reason">Why the state was entered (the error that broke or ended the connection), if any.</param>
public sealed record RayConnectionState(
    RayConnectionStatus Status,
    DateTimeOffset At,
    int Attempt = 0,
    DateTimeOffset? Since = null,
    string? Reason = null);
