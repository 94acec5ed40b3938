namespace RayClient.Jobs;

/// <summary>
/// The Jobs API (the dashboard's REST API) refused or failed a request. Carries the HTTP status and
/// the server's own text (Ray answers errors in plain text, usually a Python traceback).
/// </summary>
public class RayJobsException : RayException
{
    /// <summary>Creates the exception.</summary>
    public RayJobsException(string message, int? statusCode, string? serverMessage, bool isTransient = false, Exception? innerException = null)
        : base(message, innerException)
    {
        StatusCode = statusCode;
        ServerMessage = serverMessage;
        IsTransient = isTransient;
    }

    /// <summary>The HTTP status the server answered, or null when no answer came.</summary>
    public int? StatusCode { get; }

    /// <summary>The server's error text as sent (a traceback or a one-line message), or null.</summary>
    public string? ServerMessage { get; }

    /// <summary>True when trying again later may succeed (502/503/504 after the retry budget was spent).</summary>
    public bool IsTransient { get; }
}

/// <summary>No job has this submission id or job id (HTTP 404 <c>Job &lt;id&gt; does not exist</c>).</summary>
public class RayJobNotFoundException : RayJobsException
{
    /// <summary>Creates the exception.</summary>
    public RayJobNotFoundException(string message, string jobId, int? statusCode, string? serverMessage)
        : base(message, statusCode, serverMessage) => JobId = jobId;

    /// <summary>The id that was looked up.</summary>
    public string JobId { get; }
}

/// <summary>
/// A job with this submission id exists already. Ray answers it with HTTP 500 and the message
/// <c>Job with submission_id &lt;id&gt; already exists. Please use a different submission_id.</c>
/// (the agent's 400, wrapped by the dashboard head), not with 409.
/// </summary>
public class RayJobAlreadyExistsException : RayJobsException
{
    /// <summary>Creates the exception.</summary>
    public RayJobAlreadyExistsException(string message, string submissionId, int? statusCode, string? serverMessage)
        : base(message, statusCode, serverMessage) => SubmissionId = submissionId;

    /// <summary>The submission id that is taken.</summary>
    public string SubmissionId { get; }
}

/// <summary>The server rejected the request as malformed (HTTP 400: unknown field, wrong type; 405: refused as browser traffic).</summary>
public class RayJobsInvalidRequestException : RayJobsException
{
    /// <summary>Creates the exception.</summary>
    public RayJobsInvalidRequestException(string message, int? statusCode, string? serverMessage)
        : base(message, statusCode, serverMessage)
    {
    }
}

/// <summary>The cluster requires a token and none, or a wrong one, was sent (HTTP 401/403).</summary>
public class RayJobsUnauthorizedException : RayJobsException
{
    /// <summary>Creates the exception.</summary>
    public RayJobsUnauthorizedException(string message, int? statusCode, string? serverMessage)
        : base(message, statusCode, serverMessage)
    {
    }
}

/// <summary>
/// The cluster's Ray is too old for the Jobs API or for a feature that was asked for (e.g.
/// <c>entrypoint_memory</c> needs Ray 2.8), or the address serves no Jobs API at all.
/// </summary>
public class RayJobsServerTooOldException : RayJobsException
{
    /// <summary>Creates the exception.</summary>
    public RayJobsServerTooOldException(string message, string? serverVersion, string requiredVersion, int? statusCode = null, string? serverMessage = null)
        : base(message, statusCode, serverMessage)
    {
        ServerVersion = serverVersion;
        RequiredVersion = requiredVersion;
    }

    /// <summary>The Ray version the server reported, or null when it has no version endpoint.</summary>
    public string? ServerVersion { get; }

    /// <summary>The oldest Ray version that works.</summary>
    public string RequiredVersion { get; }
}
