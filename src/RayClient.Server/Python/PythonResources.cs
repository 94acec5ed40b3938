using System.Reflection;

namespace RayClient.Server.Python;

/// <summary>The Python files that ship inside RayClient.Server as resources, written out where Python runs them.</summary>
internal static class PythonResources
{
    /// <summary>The worker process's script.</summary>
    public const string Worker = "ray_worker.py";

    /// <summary>The <c>ray</c> package of job drivers.</summary>
    public const string Driver = "ray_driver.py";

    /// <summary>What the worker and the drivers' <c>ray</c> share (the pickle conventions between them), written next to both.</summary>
    public const string Shared = "ray_shared.py";

    /// <summary>Writes resource <paramref name="name"/> to <paramref name="path"/>.</summary>
    public static void Write(string name, string path)
    {
        using var source = Assembly.GetExecutingAssembly().GetManifestResourceStream("RayClient.Server." + name)
            ?? throw new InvalidOperationException($"The {name} resource is missing from RayClient.Server.");
        using var target = File.Create(path);
        source.CopyTo(target);
    }
}
