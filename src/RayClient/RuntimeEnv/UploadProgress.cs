namespace RayClient.Packaging;

/// <summary>Stages of one package's upload.</summary>
public enum UploadStage
{
    /// <summary>Hashing the local files to find the URI.</summary>
    Hashing,

    /// <summary>Packing the zip; <see cref="UploadProgress.Bytes"/> counts file bytes packed.</summary>
    Zipping,

    /// <summary>Sending the package; <see cref="UploadProgress.Bytes"/> is its size.</summary>
    Uploading,

    /// <summary>The package was sent.</summary>
    Uploaded,

    /// <summary>The cluster (or this process's cache) already had it; nothing was sent.</summary>
    AlreadyPresent,
}

/// <summary>Progress of one local path's upload.</summary>
/// <param name="Field"><c>working_dir</c> or <c>py_modules</c>.</param>
/// <param name="LocalPath">The local path as given.</param>
/// <param name="Uri">The package URI, once known (empty while hashing).</param>
/// <param name="Stage">What is happening.</param>
/// <param name="Bytes">Bytes done in this stage.</param>
public sealed record UploadProgress(string Field, string LocalPath, string Uri, UploadStage Stage, long Bytes);
