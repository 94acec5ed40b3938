using RayClient.Jobs;

namespace RayClient.Tests.Jobs;

public sealed class JobsErrorsTests
{
    // What Ray's head answers for a duplicate submission id: the agent's 400, wrapped in a 500.
    private const string DuplicateBody = """
        Traceback (most recent call last):
          File "/ray/dashboard/modules/job/job_head.py", line 371, in submit_job
            resp = await job_agent_client.submit_job_internal(submit_request)
        RuntimeError: Request failed with status code 400: Traceback (most recent call last):
          File "/ray/dashboard/modules/job/job_agent.py", line 45, in submit_job
        ValueError: Job with submission_id raysubmit_X already exists. Please use a different submission_id.
        .
        """;

    [Fact]
    public void FromResponse_500AlreadyExistsOnSubmit_IsRayJobAlreadyExists()
    {
        var error = JobsErrors.FromResponse(500, DuplicateBody, "submit job", "raysubmit_X", isSubmit: true);

        var duplicate = Assert.IsType<RayJobAlreadyExistsException>(error);
        Assert.Equal(500, duplicate.StatusCode);
        Assert.Equal("raysubmit_X", duplicate.SubmissionId);
        Assert.Contains("already exists", duplicate.ServerMessage);
    }

    [Fact]
    public void FromResponse_500AlreadyExistsOutsideSubmit_IsNotADuplicate()
    {
        var error = JobsErrors.FromResponse(500, DuplicateBody, "stop job", "raysubmit_X");

        Assert.IsNotType<RayJobAlreadyExistsException>(error);
        Assert.Equal(500, error.StatusCode);
    }

    [Fact]
    public void FromResponse_404WithJob_IsRayJobNotFound()
    {
        var error = Assert.IsType<RayJobNotFoundException>(JobsErrors.FromResponse(404, "Job nope does not exist", "get job info", "nope"));

        Assert.Equal("nope", error.JobId);
        Assert.Equal("Job 'nope' does not exist (HTTP 404).", error.Message);
    }

    [Fact]
    public void FromResponse_400_IsInvalidRequestWithTheTracebacksLastLine()
    {
        var body = "Traceback (most recent call last):\n  File \"utils.py\", line 1\nTypeError: __init__() got an unexpected keyword argument 'foo'";

        var error = Assert.IsType<RayJobsInvalidRequestException>(JobsErrors.FromResponse(400, body, "submit job", "id", isSubmit: true));

        Assert.Contains("TypeError: __init__() got an unexpected keyword argument 'foo'", error.Message);
        Assert.Equal(body, error.ServerMessage);
    }

    [Theory]
    [InlineData(401, "Unauthorized: Missing authentication token")]
    [InlineData(403, "Forbidden: Invalid authentication token")]
    public void FromResponse_AuthStatuses_AreUnauthorizedWithAHint(int status, string body)
    {
        var error = Assert.IsType<RayJobsUnauthorizedException>(JobsErrors.FromResponse(status, body, "list jobs", null));

        Assert.Equal(status, error.StatusCode);
        Assert.Contains(body, error.Message);
        Assert.Contains("RAY_AUTH_TOKEN", error.Message);
    }

    [Theory]
    [InlineData(502)]
    [InlineData(503)]
    [InlineData(504)]
    public void FromResponse_GatewayStatuses_AreTransient(int status) =>
        Assert.True(JobsErrors.FromResponse(status, "Service Unavailable", "list jobs", null).IsTransient);

    [Theory]
    [InlineData(413, "Maximum request body size 104857600 exceeded, actual body size 104857601")]
    [InlineData(500, "Traceback (most recent call last):\naiohttp.web_exceptions.HTTPRequestEntityTooLarge: Request Entity Too Large")]
    public void FromResponse_TooLargeInEitherRelease_SaysTheLimit(int status, string body)
    {
        var error = JobsErrors.FromResponse(status, body, "upload a package", null);

        Assert.Contains("100 MiB", error.Message);
        Assert.False(error.IsTransient);
    }

    [Fact]
    public void FromResponse_DeleteOfARunningJob_KeepsRaysMessage()
    {
        var body = "Traceback (most recent call last):\nRuntimeError: Attempted to delete job 'x', but it is in a non-terminal state RUNNING.";

        var error = JobsErrors.FromResponse(500, body, "delete job", "x");

        Assert.Equal(typeof(RayJobsException), error.GetType());
        Assert.Contains("non-terminal state RUNNING", error.Message);
    }
}
