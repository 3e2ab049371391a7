package rule

// What CloudTrail records carry, for load-time lint (lint.go).

// cloudTrailFields are the top-level fields of a CloudTrail record
// (management, data, network activity and Insights events), from the AWS
// CloudTrail User Guide, "CloudTrail record contents" (event version 1.11)
// and "CloudTrail record contents for Insights events". A Sigma detection
// that requires another top-level field can never match.
var cloudTrailFields = []string{
	"eventVersion", "userIdentity", "eventTime", "eventSource", "eventName", "awsRegion",
	"sourceIPAddress", "userAgent", "errorCode", "errorMessage", "requestParameters",
	"responseElements", "additionalEventData", "requestID", "eventID", "eventType",
	"apiVersion", "managementEvent", "readOnly", "resources", "recipientAccountId",
	"serviceEventDetails", "sharedEventID", "vpcEndpointId", "vpcEndpointAccountId",
	"eventCategory", "addendum", "sessionCredentialFromConsole", "edgeDeviceDetails",
	"tlsDetails", "eventContext", "insightDetails",
}

// userIdentityFields are the members of a record's userIdentity element
// (CloudTrail User Guide, "CloudTrail userIdentity element"), the only
// object whose members are fixed: requestParameters, responseElements,
// additionalEventData and serviceEventDetails depend on the API.
var userIdentityFields = []string{
	"type", "principalId", "arn", "accountId", "accessKeyId", "userName", "sessionContext",
	"invokedBy", "identityProvider", "credentialId", "onBehalfOf", "inScopeOf",
	"sourceIdentity", "webIdFederationData", "sessionIssuer",
}

// ctFieldHints explain names that look like CloudTrail fields but are not.
var ctFieldHints = map[string]string{
	"status": "a CloudTrail record has no status: a failed call has errorCode (and errorMessage), a successful one has none, so select success with `errorCode: null`",
	"result": "a CloudTrail record has no result: a failed call has errorCode (and errorMessage), a successful one has none, so select success with `errorCode: null`",
}

// ECS API calls for which the CloudTrail decoder (pipeline/format,
// ecsEntity) fills entity fields from requestParameters/responseElements;
// every other CloudTrail event carries only account, region and principal.
var (
	// A task: responseElements.tasks[] (RunTask, StartTask), the request's
	// task (StopTask, ExecuteCommand, Submit*StateChange).
	ctTaskCalls = []string{"RunTask", "StartTask", "StopTask", "ExecuteCommand",
		"SubmitTaskStateChange", "SubmitContainerStateChange"}
	// A task definition ARN: responseElements.taskDefinition (Register /
	// Deregister), responseElements.service.taskDefinition (services), or a
	// request's taskDefinition written as an ARN (RunTask, StartTask).
	ctTaskDefCalls = []string{"RegisterTaskDefinition", "DeregisterTaskDefinition",
		"CreateService", "UpdateService", "DeleteService", "RunTask", "StartTask"}
	// A service: the request's service or serviceName.
	ctServiceCalls = []string{"CreateService", "UpdateService", "DeleteService",
		"UpdateServicePrimaryTaskSet", "CreateTaskSet", "UpdateTaskSet", "DeleteTaskSet",
		"DescribeTaskSets"}
	// ECS calls without a cluster (request cluster, response clusterArn or
	// cluster, or the task ARN); every other ECS call names one.
	ctNoClusterCalls = []string{"RegisterTaskDefinition", "DeregisterTaskDefinition",
		"DescribeTaskDefinition", "ListTaskDefinitions", "ListTaskDefinitionFamilies",
		"DeleteTaskDefinitions", "PutAccountSetting", "PutAccountSettingDefault",
		"DeleteAccountSetting", "ListAccountSettings", "ListClusters", "DescribeClusters",
		"CreateCapacityProvider", "UpdateCapacityProvider", "DeleteCapacityProvider",
		"DescribeCapacityProviders", "TagResource", "UntagResource", "ListTagsForResource",
		"DiscoverPollEndpoint"}
)
