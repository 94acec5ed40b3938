namespace RayClient.Jobs;

/// <summary>
/// How <see cref="JobSubmissionClient"/> retries transient failures: connection refused or reset,
/// an attempt that timed out, and HTTP 502, 503 and 504. Immutable; see the presets.
/// </summary>
/// <remarks>
/// Every request is safe to retry: reads and stop are idempotent, a package upload puts the same
/// bytes under the same content-hash name, a delete that succeeded before its answer was lost is
/// recognised, and a submit always carries a submission id fixed before the first attempt, so a
/// retried submit finds its own job instead of starting a second one.
/// </remarks>
public sealed record JobsRetryPolicy
{
    /// <summary>Up to 5 retries, 0.5 s doubling to at most 4 s (with jitter), none started after 20 s.</summary>
    public static JobsRetryPolicy Default { get; } = new();

    /// <summary>No retries: the first failure is reported.</summary>
    public static JobsRetryPolicy None { get; } = new() { MaxRetryAttempts = 0 };

    /// <summary>Retries after the first attempt. Default: 5.</summary>
    public int MaxRetryAttempts { get; init; } = 5;

    /// <summary>Delay before the first retry; later ones double (with jitter). Default: 0.5 s.</summary>
    public TimeSpan InitialDelay { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Longest delay between attempts. Default: 4 s.</summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(4);

    /// <summary>No retry starts once this much time has passed since the first attempt began. Default: 20 s.</summary>
    public TimeSpan Budget { get; init; } = TimeSpan.FromSeconds(20);

    internal void Validate()
    {
        if (MaxRetryAttempts < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxRetryAttempts), MaxRetryAttempts, "Must be 0 or more.");
        }

        if (InitialDelay <= TimeSpan.Zero || MaxDelay < InitialDelay)
        {
            throw new ArgumentOutOfRangeException(nameof(InitialDelay), InitialDelay, "InitialDelay must be positive and MaxDelay at least InitialDelay.");
        }

        if (Budget < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(Budget), Budget, "Must not be negative.");
        }
    }
}
