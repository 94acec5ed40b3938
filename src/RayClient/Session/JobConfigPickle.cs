using RayClient.Serialization;

namespace RayClient.Session;

/// <summary>
/// The <c>InitRequest.job_config</c> pickle: built through Ray's own
/// <c>ray.job_config.JobConfig.from_json(dict)</c> on the server, which exists in every 2.x release
/// and tolerates unknown keys (ray-versions.md §4.3), instead of a hand-built instance state that
/// breaks whenever Ray adds an attribute.
/// </summary>
internal static class JobConfigPickle
{
    public static byte[] Create(string? rayNamespace, RuntimeEnv? runtimeEnv)
    {
        if (rayNamespace is null && runtimeEnv is null)
        {
            return []; // the server substitutes a default JobConfig (anonymous namespace)
        }

        var json = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (rayNamespace is not null)
        {
            json["ray_namespace"] = rayNamespace;
        }

        if (runtimeEnv is not null)
        {
            json["runtime_env"] = runtimeEnv.ToPythonDict();
        }

        // Protocol 4: the dotted name "JobConfig.from_json" needs STACK_GLOBAL, and a Python 3.7
        // server (Ray <= 2.8) cannot read protocol 5.
        var value = new PyReduce(new PyGlobal("ray.job_config", "JobConfig.from_json"), new PyTuple(json));
        return PickleWriter.SerializeToArray(value, new PickleWriterOptions { Protocol = 4 });
    }
}
